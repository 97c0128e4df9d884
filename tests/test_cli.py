"""The ``headwater`` command as an operator runs it: a real process in a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from headwater_demo.crm import CRMServer
from headwater_demo.logistics import LogisticsServer

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def headwater(cwd: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    environment.update(env or {})
    return subprocess.run([HEADWATER, *args], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=300, check=False)


def landed(cwd: Path) -> dict[str, int]:
    con = duckdb.connect(str(cwd / ".headwater" / "warehouse.duckdb"), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'raw_%'"
        ).fetchall()]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """A directory where ``headwater demo`` has run once, as in the quick start."""
    cwd = tmp_path_factory.mktemp("demo")
    result = headwater(cwd, "--set", "connectors.erp.orders=500", "demo")
    assert result.returncode == 0, result.stderr
    return cwd


def source_counts(cwd: Path) -> dict[str, int]:
    """Rows in every source of the demo estate: the ERP file, the CRM and the logistics
    service (same seeds as the demo)."""
    crm = CRMServer(accounts=120, tickets=400)
    counts = {f"raw_crm__{name}": len(crm.records(name))
              for name in ("accounts", "contacts", "tickets")}
    counts["raw_logistics__shipments"] = len(LogisticsServer(shipments=300).records())
    return counts | erp_counts(cwd)


def erp_counts(cwd: Path) -> dict[str, int]:
    engine = sa.create_engine(f"sqlite:///{cwd / '.headwater' / 'erp.sqlite'}")
    with engine.connect() as conn:
        counts = {
            f"raw_erp__{stream}": conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar()
            for stream, table in [("customers", "Customer Master"), ("products", "PRODUCTS"),
                                  ("orders", "orders"), ("order_lines", "ORDER LINES")]
        }
    engine.dispose()
    return counts


def test_demo_builds_the_erp_and_lands_every_row(demo_dir: Path) -> None:
    assert landed(demo_dir) == source_counts(demo_dir)


def test_a_second_run_reports_no_new_rows(demo_dir: Path) -> None:
    result = headwater(demo_dir, "run")
    assert result.returncode == 0, result.stderr
    assert "erp.orders: no new rows" in result.stdout
    assert "done: 0 rows landed" in result.stdout
    assert landed(demo_dir) == source_counts(demo_dir)


def test_check_and_discover(demo_dir: Path) -> None:
    check = headwater(demo_dir, "check")
    assert check.returncode == 0, check.stderr
    assert "erp: ok sqlite database" in check.stdout
    assert "\ncrm: ok http://127.0.0.1:" in check.stdout
    discover = headwater(demo_dir, "discover", "erp.order_lines")
    assert discover.returncode == 0, discover.stderr
    assert "erp.order_lines (primary key ORDER_NO, LINE_NO, cursor updated_at)" in discover.stdout
    assert "QTY: decimal128(10, 3)" in discover.stdout


def test_state_show_and_reset_one_stream(demo_dir: Path) -> None:
    shown = headwater(demo_dir, "state", "show", "erp.orders")
    assert shown.returncode == 0 and shown.stdout.startswith("erp.orders: {'boundary'")
    reset = headwater(demo_dir, "state", "reset", "erp.orders")
    assert reset.returncode == 0 and "erp.orders: state reset" in reset.stdout
    rerun = headwater(demo_dir, "run", "erp.orders")
    assert rerun.returncode == 0, rerun.stderr
    assert f"erp.orders: {source_counts(demo_dir)['raw_erp__orders']:,} rows" in rerun.stdout
    assert landed(demo_dir) == source_counts(demo_dir)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["run", "billing"], "no connector 'billing'"),
        (["run", "erp.invoices"], "has no stream 'invoices'"),
        (["state", "reset", "erp.nothing"], "no saved state for 'erp.nothing'"),
    ],
)
def test_failures_exit_non_zero_with_one_line(demo_dir: Path, args, reason) -> None:
    result = headwater(demo_dir, *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("headwater: error:") and reason in lines[0]


@pytest.mark.mariadb
def test_a_secret_from_the_environment_never_reaches_the_output(tmp_path: Path) -> None:
    secret = "Zebra-Crossing-42"
    (tmp_path / "headwater.toml").write_text(
        '[warehouse]\nurl = "duckdb:///w.duckdb"\n\n'
        "[connectors.crm]\n"
        'url = "mysql+pymysql://nobody:${CRM_PASSWORD}@127.0.0.1:3306/test"\n'
        "retry = { max_attempts = 2, base_delay = 0 }\n"
    )
    result = headwater(tmp_path, "--config", "headwater.toml", "check",
                       env={"CRM_PASSWORD": secret, "HEADWATER_LOG_LEVEL": "DEBUG"})
    assert result.returncode == 1
    assert secret not in result.stdout + result.stderr
    assert "authentication failed" in result.stderr and "127.0.0.1:3306" in result.stderr


def test_a_missing_environment_variable_is_named(tmp_path: Path) -> None:
    (tmp_path / "headwater.toml").write_text(
        '[warehouse]\nurl = "duckdb:///w.duckdb"\n[connectors.crm]\nurl = "${CRM_URL}"\n'
    )
    result = headwater(tmp_path, "check")
    assert result.returncode == 1
    assert "needs the environment variable CRM_URL" in result.stderr


@pytest.mark.slow
def test_progress_lines_on_long_reads(tmp_path: Path) -> None:
    result = headwater(tmp_path, "--set", "connectors.erp.orders=60000", "demo",
                       env={"HEADWATER_PROGRESS_SECONDS": "0.05"})  # a read here is < 1 s
    assert result.returncode == 0, result.stderr
    assert re.search(r"  erp\.order_lines: [\d,]+ rows, [\d,]+ rows/s", result.stderr), \
        result.stderr


def test_an_odbc_source_is_configured_and_run(demo_dir: Path, tmp_path: Path) -> None:
    erp = demo_dir / ".headwater" / "erp.sqlite"
    (tmp_path / "headwater.toml").write_text(
        '[warehouse]\nurl = "duckdb:///.headwater/warehouse.duckdb"\n\n'
        "[connectors.erp]\n"
        'kind = "odbc"\n'
        f'connection_string = "Driver={{SQLite3}};Database={erp}"\n'
        "chunk_size = 500\n"
        "[[connectors.erp.streams]]\n"
        'name = "orders"\ntable = "orders"\ncursor = "updated_at"\n'
        "[[connectors.erp.streams]]\n"
        'name = "order_lines"\ntable = "ORDER LINES"\ncursor = "updated_at"\n'
    )
    first = headwater(tmp_path, "run")
    assert first.returncode == 0, first.stderr
    expected = source_counts(demo_dir)
    assert landed(tmp_path) == {t: expected[t] for t in ("raw_erp__orders",
                                                         "raw_erp__order_lines")}
    again = headwater(tmp_path, "run")
    assert again.returncode == 0 and "no new rows" in again.stdout + again.stderr


@pytest.mark.mariadb
def test_an_odbc_password_from_the_environment_never_reaches_the_output(tmp_path: Path
                                                                        ) -> None:
    secret = "Odbc-Zebra-Crossing-42"
    (tmp_path / "headwater.toml").write_text(
        '[warehouse]\nurl = "duckdb:///w.duckdb"\n\n'
        "[connectors.erp]\n"
        'kind = "odbc"\n'
        'connection_string = "Driver={MariaDB Unicode};Server=127.0.0.1;Port=3306;'
        'Database=test;Uid=nobody;Pwd=${ERP_PASSWORD}"\n'
        "retry = { max_attempts = 2, base_delay = 0 }\n"
    )
    result = headwater(tmp_path, "--config", "headwater.toml", "check",
                       env={"ERP_PASSWORD": secret, "HEADWATER_LOG_LEVEL": "DEBUG"})
    assert result.returncode == 1
    assert secret not in result.stdout + result.stderr
    assert "authentication failed" in result.stderr and "127.0.0.1:3306" in result.stderr


def test_demo_normalizes_what_it_landed(demo_dir: Path) -> None:
    con = duckdb.connect(str(demo_dir / ".headwater" / "warehouse.duckdb"), read_only=True)
    try:
        def count(sql: str) -> int:
            return con.execute(sql).fetchone()[0]

        for entity, raw in [("order", "raw_erp__orders"), ("contact", "raw_crm__contacts"),
                            ("shipment", "raw_logistics__shipments")]:
            assert count(f'SELECT count(*) FROM "{raw}"') == \
                count(f'SELECT count(*) FROM "clean_{entity}"') + \
                count(f'SELECT count(DISTINCT source_key) FROM "quarantine_{entity}"')
        assert count('SELECT count(*) FROM "quarantine_contact"') > 0
        assert count('SELECT count(DISTINCT party_id) FROM "clean_party_xref"') > 0
    finally:
        con.close()


def test_normalize_again_and_reprocess_the_quarantine(demo_dir: Path) -> None:
    again = headwater(demo_dir, "normalize", "contact")
    assert again.returncode == 0, again.stderr
    # Incremental: the rows landed since the last run (all of them, landed within the
    # clock-skew margin of the first normalization), merged by key.
    assert "contact: 360 new raw -> 349 clean, 11 quarantined (3.1%)" in again.stdout
    full = headwater(demo_dir, "normalize", "--full", "contact")
    assert full.returncode == 0, full.stderr
    assert "contact: 360 raw -> 349 clean, 11 quarantined (3.1%)" in full.stdout
    # parties follow the change, or are resolved whole when asked, and say which
    assert re.search(r"^party: \d+ parties from \d+ records; \d+ re-resolved after the "
                     r"change \(", again.stdout, re.M), again.stdout
    assert re.search(r"^party: \d+ resolved from \d+ records \(.*; whole: asked for\)$",
                     full.stdout, re.M), full.stdout
    assert "quarantine reasons: email: email (6)" in again.stdout
    retried = headwater(demo_dir, "normalize", "--quarantined", "contact")
    assert retried.returncode == 0, retried.stderr
    assert "contact: 11 re-processed -> 0 clean, 11 quarantined" in retried.stdout


@pytest.mark.parametrize("target", ["order.customer_no", "clean/order.customer_no",
                                    "clean_order.customer_no"])
def test_lineage_names_the_raw_column_and_the_transform(demo_dir: Path, target: str) -> None:
    result = headwater(demo_dir, "lineage", target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "clean_order.customer_no  ←  raw_erp__orders.cust_no  [trim]",
        "  raw_erp__orders.cust_no  ←  erp table 'orders'.cust_no  [landed by the connector]",
    ]


@pytest.mark.parametrize("target", ["raw/erp/orders.total_cents", "raw_erp__orders.total_cents"])
def test_lineage_takes_the_uis_asset_keys_as_well_as_table_names(demo_dir: Path, target: str
                                                                ) -> None:
    result = headwater(demo_dir, "lineage", target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "raw_erp__orders.total_cents  ←  erp table 'orders'.total_cents  "
        "[landed by the connector]"]


def test_the_party_crosswalk_has_lineage(demo_dir: Path) -> None:
    result = headwater(demo_dir, "lineage", "clean/party_xref")
    assert result.returncode == 0, result.stderr
    assert "clean_party_xref.party_id" in result.stdout
    assert "erp_customer_no" in result.stdout  # the declared key link
    traced = headwater(demo_dir, "lineage", "clean/party_xref.source_key")
    assert "raw_erp__customers.CUST_NO  ←  erp table 'Customer Master'.CUST_NO" in \
        traced.stdout


def test_explain_shows_an_answer_its_cited_rows_and_their_sources(demo_dir: Path) -> None:
    result = headwater(demo_dir, "explain", "model/account_health", "ACC-00001")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("account_health answer for ACC-00001 (by "
                        "local/account-health-rules-1):")
    assert any(line.startswith("  risk = ") for line in lines)
    assert any(line.startswith("  account:ACC-00001  (clean_account key ACC-00001; "
                               "crm.accounts, landed ") for line in lines)
    assert any("← raw_crm__accounts.name ← crm GET /api/accounts.name" in line
               for line in lines)
    unknown = headwater(demo_dir, "explain", "model/account_health", "ACC-99999")
    assert unknown.returncode == 1
    assert "has no answer for 'ACC-99999'; answers exist for ACC-" in unknown.stderr


def test_lineage_traces_a_model_answer_back_to_source_columns(demo_dir: Path) -> None:
    result = headwater(demo_dir, "lineage", "model/account_health.cited_sources")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model_account_health.cited_sources  ←  "
                               "context_account.{document.account.account_id, ")
    assert any(line.startswith("  context_account.provenance  ←  ") for line in lines)
    assert any(line.strip().startswith("clean_order.order_no  ←  raw_erp__orders.order_no")
               for line in lines)
    assert any(line.strip().startswith("clean_ticket._hw_extracted_at  ←  "
                                       "raw_crm__tickets._hw_extracted_at") for line in lines)


def test_lineage_of_an_unknown_column_says_which_exist(demo_dir: Path) -> None:
    result = headwater(demo_dir, "lineage", "order.nope")
    assert result.returncode == 1
    assert "clean_order has no column 'nope'; columns: order_no, customer_no" in result.stderr


def test_one_bad_stream_among_three_lands_the_other_two_and_fails_naming_it(tmp_path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.sqlite'}")
    with engine.begin() as conn:
        for table in ("first", "broken", "last"):
            conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, qty INTEGER)"))
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (1, 10), (2, 20), (3, 30)"))
        conn.execute(sa.text("UPDATE broken SET qty = 'lots' WHERE id = 2"))
    engine.dispose()
    streams = "".join(f'[[connectors.shop.streams]]\ntable = "{t}"\n\n'
                      for t in ("first", "broken", "last"))
    (tmp_path / "headwater.toml").write_text(
        f'[warehouse]\nurl = "duckdb:///{tmp_path.as_posix()}/.headwater/warehouse.duckdb"\n\n'
        f'[connectors.shop]\nkind = "sql"\nurl = "sqlite:///{tmp_path.as_posix()}/shop.sqlite"'
        f"\n\n{streams}", "utf-8")
    run = headwater(tmp_path, "run")
    assert run.returncode == 1
    assert "shop.first: 3 rows" in run.stdout and "shop.last: 3 rows" in run.stdout
    assert ("headwater: error: shop.broken: connector 'shop', stream 'broken': column 'qty' "
            "of the row with id=2 holds a value that does not fit int64") in run.stderr
    assert run.stderr.strip().splitlines()[-1] == "headwater: 1 of 3 streams failed: shop.broken"
    assert landed(tmp_path) == {"raw_shop__first": 3, "raw_shop__last": 3}
