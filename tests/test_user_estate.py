"""An estate that is not the demo, declared the way a user would from the README: a
package beside the config with a ``SQLConnector`` subclass on MariaDB, a TOML REST
connector behind OAuth2, a mapping with a cleaner of its own, a context and a model step
with its own pydantic output. Every surface (CLI, lineage, Dagster) sees exactly it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from headwater_demo.crm import CRMServer
from pipelines.warehouse import DuckDBWarehouse
from tests.conftest import _private_database

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]
ROOT = Path(__file__).resolve().parent.parent

CUSTOMERS = [(1, "Luís ", "Gonçalves", "brazil", "luisg@embraer.com.br"),
             (2, "Leonie", "Köhler ", "germany", "leonekohler@surfeu.de"),
             (3, "François", "Tremblay", "canada", "ftremblay@gmail.com"),
             (4, "Bjørn", "Hansen", "norway", "")]
INVOICES = [(98, 1, "2024-01-11 00:00:00", "3.98"), (121, 1, "2024-02-02 00:00:00", "3.96"),
            (143, 1, "2024-03-04 00:00:00", "5.94"), (1, 2, "2024-01-01 00:00:00", "1.98"),
            (12, 2, "2024-02-11 00:00:00", "13.86"), (99, 3, "2024-01-11 00:00:00", "3.98")]

PACKAGE = {
    "__init__.py": "",
    "sources.py": '''
        """The Chinook sales database, by subclassing the SQL kind."""
        from connectors import Incremental, SQLConnector, SQLTable


        class Chinook(SQLConnector):
            streams = (
                SQLTable(name="customers", table="Customer",
                         incremental=Incremental("LastUpdate")),
                SQLTable(name="invoices", table="Invoice",
                         incremental=Incremental("LastUpdate")),
            )
    ''',
    "entities.py": '''
        import normalization  # noqa: F401  (pandera without its pyarrow side effect)
        import pandera.polars as pa
        from pandera.engines import polars_engine as pe


        class Customer(pa.DataFrameModel):
            """A Chinook customer."""

            customer_id: int = pa.Field(unique=True, ge=1, description="CustomerId")
            first: str = pa.Field(description="first name, trimmed")
            last: str = pa.Field(description="last name, trimmed")
            name: str = pa.Field(description="first and last name")
            country: str = pa.Field(str_length={"min_value": 2}, description="title case")
            email: str = pa.Field(nullable=True, description="null where blank")


        class Invoice(pa.DataFrameModel):
            """A Chinook invoice."""

            invoice_id: int = pa.Field(unique=True, ge=1)
            customer_id: int = pa.Field(ge=1)
            invoiced_at: pe.DateTime = pa.Field(dtype_kwargs={"time_unit": "us",
                                                              "time_zone": "UTC"})
            total: pe.Decimal = pa.Field(dtype_kwargs={"precision": 10, "scale": 2}, ge=0)
    ''',
    "mappings.py": '''
        import polars as pl

        from normalization import Derived, EntityMapping, From, cleaner

        from .entities import Customer, Invoice


        @cleaner("title_case")
        def title_case(column: pl.Expr) -> pl.Expr:
            """Country names as Chinook's sales team writes them."""
            return column.str.strip_chars().str.to_titlecase()


        MAPPINGS = (
            EntityMapping(
                entity="customer", source="raw_chinook__customers", schema=Customer,
                primary_key=("CustomerId",), cursor="LastUpdate",
                columns={
                    "customer_id": From("CustomerId"),
                    "first": From("FirstName", "trim"),
                    "last": From("LastName", "trim"),
                    "name": Derived(pl.concat_str(["first", "last"], separator=" "),
                                    inputs=["first", "last"], transform="first + ' ' + last"),
                    "country": From("Country", "title_case"),
                    "email": From("Email", "blank_as_null"),
                }),
            EntityMapping(
                entity="invoice", source="raw_chinook__invoices", schema=Invoice,
                primary_key=("InvoiceId",), cursor="LastUpdate",
                columns={
                    "invoice_id": From("InvoiceId"),
                    "customer_id": From("CustomerId"),
                    "invoiced_at": From("InvoiceDate", ("timestamp", {"naive_zone": "UTC"})),
                    "total": From("Total"),
                }),
        )
    ''',
    "models.py": '''
        from decimal import Decimal
        from typing import Literal

        import pydantic


        class CustomerValue(pydantic.BaseModel):
            """How much a customer is worth to the sales team."""

            model_config = pydantic.ConfigDict(extra="forbid")

            tier: Literal["gold", "silver", "bronze"]
            spent: str
            cited_sources: list[str]


        def value_rules(document):
            spent = Decimal(document["spend"]["total"] or 0)  # JSON keeps decimals as text
            tier = "gold" if spent >= 10 else "silver" if spent >= 5 else "bronze"
            cited = [document["customer"]["source_id"],
                     *(i["source_id"] for i in document["invoices"][:2])]
            return CustomerValue(tier=tier, spent=str(spent), cited_sources=cited)
    ''',
}

CONFIG = '''
[warehouse]
url = "duckdb:///{root}/sales.duckdb"

[connectors.chinook]
class = "chinook_estate.sources:Chinook"
url = "mysql+pymysql://root@127.0.0.1:3306/{database}"
chunk_size = 2
schedule = "15 * * * *"
owners = ["team:sales-data"]

[connectors.helpdesk]
kind = "rest"
base_url = "{crm_url}"
auth.kind = "oauth2"
auth.token_url = "{token_url}"
auth.client_id = "{client_id}"
auth.client_secret = "${{HELPDESK_SECRET}}"

[[connectors.helpdesk.streams]]
name = "tickets"
path = "/api/tickets"
params = {{ per_page = 50 }}
primary_key = ["id"]
cursor = "updated_at"
paginator = {{ kind = "link_header" }}

[normalization]
mappings = ["chinook_estate.mappings"]

[contexts.customer]
budget = 400
priorities = ["invoices"]
root = {{ entity = "customer", key = "customer_id", fields = ["customer_id", "name", "country"] }}

[[contexts.customer.sections]]
name = "invoices"
entity = "invoice"
key = "invoice_id"
fields = ["invoice_id", "invoiced_at", "total"]
on = {{ customer_id = "customer_id" }}
order_by = ["invoiced_at DESC"]

[[contexts.customer.summaries]]
name = "spend"
section = "invoices"
values = {{ total = "sum(total)", invoices = "count(*)" }}

[models.customer_value]
context = "customer"
output = "chinook_estate.models:CustomerValue"
prompt = {{ version = "value-v1", system = "Rate the customer.", template = "{{context}}" }}

[[models.customer_value.providers]]
kind = "rules"
function = "chinook_estate.models:value_rules"
version = "value-rules-1"
'''


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    root = tmp_path_factory.mktemp("chinook")
    for db in _private_database("mariadb", root):
        with db.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE Customer (CustomerId INT PRIMARY KEY, "
                                 "FirstName VARCHAR(40), LastName VARCHAR(40), "
                                 "Country VARCHAR(40), Email VARCHAR(60), "
                                 "LastUpdate DATETIME NOT NULL)"))
            conn.execute(sa.text("CREATE TABLE Invoice (InvoiceId INT PRIMARY KEY, "
                                 "CustomerId INT NOT NULL, InvoiceDate DATETIME NOT NULL, "
                                 "Total DECIMAL(10,2) NOT NULL, LastUpdate DATETIME NOT NULL)"))
            for row in CUSTOMERS:
                conn.execute(sa.text("INSERT INTO Customer VALUES (:a, :b, :c, :d, :e, "
                                     "'2024-05-01 00:00:00')"),
                             dict(zip("abcde", row, strict=True)))
            for row in INVOICES:
                conn.execute(sa.text("INSERT INTO Invoice VALUES (:a, :b, :c, :d, "
                                     "'2024-05-01 00:00:00')"),
                             dict(zip("abcd", row, strict=True)))
        package = root / "chinook_estate"
        package.mkdir()
        for name, text in PACKAGE.items():
            (package / name).write_text(textwrap.dedent(text), "utf-8")
        with CRMServer(accounts=10, tickets=60, seed=3) as crm:
            config = root / "headwater.toml"
            config.write_text(CONFIG.format(
                root=root.as_posix(), database=db.engine.url.database, crm_url=crm.url,
                token_url=crm.token_url, client_id=crm.client_id), "utf-8")
            yield root, config, crm


def headwater(root: Path, config: Path, secret: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HELPDESK_SECRET": secret, "HOME": str(root)}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "--config", str(config),
                           *args], cwd=root, capture_output=True, text=True, env=env,
                          timeout=300)


def test_dagster_holds_exactly_the_users_assets_and_materializes_them(estate, monkeypatch
                                                                      ) -> None:
    from dagster import materialize

    from dagster_project import build_definitions

    root, config, crm = estate
    monkeypatch.setenv("HELPDESK_SECRET", crm.client_secret)
    monkeypatch.syspath_prepend(str(root))
    defs = build_definitions(config)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "chinook/source/customer", "chinook/source/invoice", "helpdesk/source/api_tickets",
        "raw/chinook/customers", "raw/chinook/invoices", "raw/helpdesk/tickets",
        "clean/customer", "quarantine/customer_quarantine", "clean/invoice",
        "quarantine/invoice_quarantine", "context/customer_context", "model/customer_value",
        "model_errors/customer_value_errors"}
    assert [s.name for s in defs.schedules] == ["chinook_schedule"]
    assert [s.name for s in defs.sensors] == ["headwater_automation"]

    result = materialize(defs.assets, resources=defs.resources,
                         selection=[k for k in defs.resolve_asset_graph().get_all_asset_keys()
                                    if "source" not in k.path])
    assert result.success
    counts = {event.asset_key.to_user_string(): event.materialization.metadata[
        "dagster/row_count"].value for event in result.get_asset_materialization_events()
        if "source" not in event.asset_key.path}
    with DuckDBWarehouse(root / "sales.duckdb") as warehouse:
        stored = {table: warehouse.row_count(table) for table in warehouse.tables()
                  if not table.startswith("_")}
    assert counts["raw/chinook/customers"] == stored["raw_chinook__customers"] == 4
    assert counts["raw/chinook/invoices"] == stored["raw_chinook__invoices"] == 6
    assert counts["raw/helpdesk/tickets"] == stored["raw_helpdesk__tickets"] == 60
    assert counts["clean/invoice"] == stored["clean_invoice"] == 6
    assert counts["clean/customer"] == stored["clean_customer"] == 4
    assert counts["context/customer_context"] == stored["context_customer"] == 4
    assert counts["model/customer_value"] == stored["model_customer_value"] == 4


def test_the_cli_runs_the_users_declarations_and_traces_lineage_to_the_source(estate
                                                                              ) -> None:
    root, config, crm = estate
    (root / "sales.duckdb").unlink(missing_ok=True)
    landed = headwater(root, config, crm.client_secret, "run")
    assert landed.returncode == 0, landed.stderr
    assert "chinook.invoices: 6 rows -> raw_chinook__invoices" in landed.stdout
    assert "helpdesk.tickets: 60 rows -> raw_helpdesk__tickets" in landed.stdout
    assert "erp" not in landed.stdout and "estate:" not in landed.stdout

    cleaned = headwater(root, config, crm.client_secret, "normalize")
    assert cleaned.returncode == 0, cleaned.stderr
    assert "customer: 4 raw -> 4 clean" in cleaned.stdout
    assert "invoice: 6 raw -> 6 clean" in cleaned.stdout
    built = headwater(root, config, crm.client_secret, "context")
    assert built.returncode == 0 and "context_customer: 4 contexts" in built.stdout
    answered = headwater(root, config, crm.client_secret, "model")
    assert answered.returncode == 0, answered.stderr
    assert "model_customer_value: 4 answers (4 by local/value-rules-1)" in answered.stdout

    with DuckDBWarehouse(root / "sales.duckdb") as warehouse:
        customers = {r["customer_id"]: r for r in warehouse.read_table(
            "clean_customer").to_pylist()}
        answers = {r["context_id"]: r for r in warehouse.read_table(
            "model_customer_value").to_pylist()}
    assert customers[1]["country"] == "Brazil" and customers[1]["name"] == "Luís Gonçalves"
    assert customers[4]["email"] is None
    assert answers["2"]["tier"] == "gold" and answers["4"]["tier"] == "bronze"
    assert json.loads(answers["1"]["cited"])[0]["source_id"] == "customer:1"

    traced = headwater(root, config, crm.client_secret, "lineage",
                       "model/customer_value.tier")
    assert traced.returncode == 0, traced.stderr
    assert "raw_chinook__invoices.Total  ←  chinook table 'Invoice'.Total" in traced.stdout
    assert "raw_chinook__customers.Country  ←  chinook table 'Customer'.Country" in \
        traced.stdout
    assert "account" not in traced.stdout
