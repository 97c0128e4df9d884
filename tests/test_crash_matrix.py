"""The crash matrix: ``headwater run`` killed with SIGKILL at every kill point, for every
source kind (SQL and ODBC on PostgreSQL, REST, SOAP) and both warehouses, then run again
to completion; the landed table is compared with the source row by row.

Each cell runs the real command line in a child process whose ``sitecustomize`` (in
``tests/crashpoints/``, on the child's ``PYTHONPATH`` only) kills it at the point the cell
names, twice, then once more without the hook. Rows *lost* are source keys the table
lacks, *duplicated* are rows beyond one per key, *changed* are rows whose values differ
from the source's, or whose key the source does not have.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlalchemy as sa

from connectors.testing import read_all
from headwater_demo.crm import CRMServer
from headwater_demo.logistics import LogisticsServer
from pipelines.config import load_config
from pipelines.warehouse import PROVENANCE_COLUMNS, open_warehouse, quote
from tests._reliability import record
from tests.conftest import PG_URL

HEADWATER = str(Path(sys.executable).with_name("headwater"))
CRASHPOINTS = Path(__file__).resolve().parent / "crashpoints"
ROWS = 300
PAGE = 20
COMMIT_ROWS = 50  # in the killed runs: six or more commits a table
KILLS = 2  # killed runs a cell, before the run to completion
# The n-th visit of each point that kills: a killed run has committed before it dies (so
# the next one goes on from there), except at start-up, which reads nothing.
POINTS = {"startup": 1, "read": 3, "merge": 2, "commit": 2, "state": 2, "close": 1}
KINDS = ("sql", "odbc", "rest", "soap")
WAREHOUSES = ("duckdb", "postgresql")


@dataclass
class Source:
    """One source kind: its ``[connectors.src]`` table and the rows it holds."""

    kind: str
    table: str
    key: str = "id"
    rows: list[dict[str, Any]] | None = None


def stream(name: str, **settings: str) -> str:
    lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
    return f'[[connectors.src.streams]]\nname = "{name}"\n{lines}'


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Every source kind, up for the whole module: a PostgreSQL table read by the SQL and
    the ODBC connector, the demo CRM's tickets (REST, OAuth2) and the demo logistics
    service's shipments (SOAP, WS-Security)."""
    schema = f"hw_crash_src_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {quote(schema)}"))
        conn.execute(sa.text(
            f"CREATE TABLE {quote(schema)}.items AS SELECT g AS id, "
            "(g * 1.25)::numeric(12,2) AS amount, md5(g::text) AS note, "
            "timestamp '2024-01-01' + g * interval '1 minute' AS changed "
            f"FROM generate_series(1, {ROWS}) g"))
        conn.execute(sa.text(f"ALTER TABLE {quote(schema)}.items ADD PRIMARY KEY (id)"))
    relational = stream("items", table='"items"', cursor='"changed"')
    odbc = ("Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;"
            "Uid=postgres;Pwd=")
    crm = CRMServer(accounts=20, tickets=ROWS)
    logistics = LogisticsServer(shipments=ROWS)
    with crm, logistics:
        kinds = {
            "sql": Source("sql", f'kind = "sql"\nurl = "{PG_URL}"\nschema = "{schema}"\n'
                                 f"chunk_size = 25\n{relational}"),
            "odbc": Source("odbc", f'kind = "odbc"\nconnection_string = "{odbc}"\n'
                                   f'schema = "{schema}"\nchunk_size = 25\n{relational}'),
            "rest": Source("rest", f'kind = "rest"\nbase_url = "{crm.url}"\n'
                           f'auth = {{ kind = "oauth2", token_url = "{crm.token_url}", '
                           f'client_id = "{crm.client_id}", '
                           f'client_secret = "{crm.client_secret}" }}\n'
                           + stream("items", path='"/api/tickets"',
                                    params=f"{{ per_page = {PAGE} }}",
                                    since_param='"updated_since"', primary_key='["id"]',
                                    cursor='"updated_at"',
                                    paginator='{ kind = "link_header" }')),
            "soap": Source("soap", f'kind = "soap"\nwsdl = "{logistics.wsdl_url}"\n'
                           f'username = "{logistics.username}"\n'
                           f'password = "{logistics.password}"\n'
                           + stream("items", operation='"ListShipments"',
                                    record_path='"shipment"', since_arg='"updatedFrom"',
                                    primary_key='["id"]', cursor='"updatedAt"',
                                    paginator='{ kind = "cursor", cursor_path = '
                                              '"nextPageToken", cursor_param = "pageToken", '
                                              f'limit_param = "pageSize", limit = {PAGE} }}')),
        }
        scratch = tmp_path_factory.mktemp("crash-sources")
        for source in kinds.values():
            source.rows = rows_in_source(source, scratch)
            assert len(source.rows) == ROWS, source.kind
        yield kinds
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {quote(schema)} CASCADE"))
    engine.dispose()


def rows_in_source(source: Source, folder: Path) -> list[dict[str, Any]]:
    """The stream's rows as its connector reads them in one uninterrupted read."""
    path = folder / f"{source.kind}.toml"
    path.write_text(f'[warehouse]\nurl = "duckdb:///{folder}/unused.duckdb"\n\n'
                    f"[connectors.src]\n{source.table}", "utf-8")
    with load_config(path).build_connector("src") as connector:
        batches, _ = read_all(connector, "items")
    return pa.Table.from_batches(batches).to_pylist()


@pytest.fixture
def warehouse_url(request, tmp_path):
    """A fresh warehouse of the kind the test names: a DuckDB file, or a PostgreSQL schema
    not there yet (dropped afterwards)."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'w.duckdb'}"
        return
    schema = f"hw_crash_{uuid.uuid4().hex[:8]}"
    yield f"postgresql://postgres@127.0.0.1:5432/test?schema={schema}&lock_wait=30"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE"))
    engine.dispose()


def headwater_run(cwd: Path, **hooks: str) -> subprocess.CompletedProcess:
    """``headwater run`` in ``cwd``; ``hooks`` (HEADWATER_TEST_* settings) load the kill
    points into the child."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    if hooks:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CRASHPOINTS),
                                                          env.get("PYTHONPATH")]))
        env.update(hooks)
    return subprocess.run([HEADWATER, "--config", "headwater.toml", "run"], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=180, check=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    if isinstance(value, decimal.Decimal):
        return value.normalize()
    return value


def compare(url: str, source: Source) -> dict[str, int]:
    """Rows lost, duplicated and changed in the landed table against the source."""
    with open_warehouse(url) as warehouse:
        landed = warehouse.query('SELECT * FROM "raw_src__items"')
    landed = landed.drop_columns([c for c in PROVENANCE_COLUMNS if c in landed.column_names])
    assert source.rows is not None
    by_key = {row[source.key]: row for row in source.rows}
    rows = landed.to_pylist()
    counts = Counter(row[source.key] for row in rows)

    def differs(row: dict[str, Any]) -> bool:
        original = by_key.get(row[source.key])
        return original is None or any(_plain(row.get(c)) != _plain(v)
                                       for c, v in original.items())

    return {"rows": len(by_key), "lost": len(by_key.keys() - counts.keys()),
            "duplicated": sum(n - 1 for n in counts.values()),
            "changed": sum(map(differs, rows))}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.reliability
@pytest.mark.parametrize("warehouse_url", WAREHOUSES, indirect=True)
@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("kind", KINDS)
def test_a_run_killed_at_any_point_loses_duplicates_and_changes_nothing(
    sources, kind, point, warehouse_url, tmp_path, request
) -> None:
    source = sources[kind]
    (tmp_path / "headwater.toml").write_text(
        f'[warehouse]\nurl = "{warehouse_url}"\n\n[connectors.src]\n{source.table}', "utf-8")
    marks = tmp_path / "kills.txt"
    kills = 0
    for _ in range(KILLS):
        killed = headwater_run(tmp_path, HEADWATER_TEST_KILL_AT=f"{point}:{POINTS[point]}",
                               HEADWATER_TEST_KILL_MARK=str(marks),
                               HEADWATER_TEST_COMMIT_ROWS=str(COMMIT_ROWS))
        fired = len(marks.read_text().splitlines()) if marks.exists() else 0
        if killed.returncode == 0:
            assert fired == kills, "a kill was marked but the run went on"
            continue  # the point was not reached n times: nothing left to kill
        assert killed.returncode == -9, killed.stderr
        assert fired == kills + 1, f"killed, but not at {point}: {killed.stderr}"
        kills += 1
    finished = headwater_run(tmp_path)
    assert finished.returncode == 0, finished.stderr
    figures = compare(warehouse_url, source)
    warehouse = request.node.callspec.params["warehouse_url"]
    record("crash", f"{kind}/{point}/{warehouse}", kind=kind, point=point,
           warehouse=warehouse, kills=kills, **figures)

    assert kills >= 1, f"the {point} kill point was never reached"
    assert figures == {"rows": ROWS, "lost": 0, "duplicated": 0, "changed": 0}


def test_the_comparison_sees_lost_duplicated_and_changed_rows(tmp_path) -> None:
    """The figures above can fail: each kind of damage is counted."""
    source = Source("sql", "", rows=[{"id": i, "note": f"n{i}"} for i in range(1, 6)])
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE raw_src__items AS SELECT * FROM (VALUES (1, 'n1'), "
                    "(2, 'n2'), (2, 'n2'), (3, 'edited'), (9, 'n9')) AS t(id, note)")
    figures = compare(f"duckdb:///{path}", source)
    assert figures == {"rows": 5, "lost": 2, "duplicated": 1, "changed": 2}
