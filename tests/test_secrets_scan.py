"""The secrets scan: one configuration with every kind of credential headwater takes, run
the way an operator and Dagster run it, then every place a secret could come to rest is
searched for every secret, raw and encoded.

Credentials: an API key in a query parameter (the server echoes it in its next links), an
API key in a header, basic auth, a bearer token, OAuth2 with a client secret and with a
``private_key_jwt`` key, WS-Security UsernameToken passwords (digest and text), a
PostgreSQL password (a role made for the test, in the source URL and the warehouse URL)
and an ODBC ``PWD=`` (a MariaDB user made for the test); and the wrong ones of runs that
fail on them.

Runs: ``check``, ``discover``, ``run`` (with ``HEADWATER_DEBUG=1`` and
``HEADWATER_LOG_LEVEL=DEBUG``), a run killed mid-read (a page checkpoint is stored),
its resumption, ``state show``, ``lineage``, and ``run`` and ``check`` with wrong
credentials, on a DuckDB and on a PostgreSQL warehouse; then a Dagster materialization
of every raw asset, and one with wrong credentials, on an instance that captures the
headwater, zeep, urllib3 and authlib loggers.

Places: the commands' output, log records, the Dagster event log, every file of the
Dagster instance's storage, the state table, and every table of both warehouses.
Forms: raw, URL-encoded, XML-escaped, base64 (and basic auth's base64 ``user:password``).
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from joserfc.jwk import RSAKey

from headwater_demo.crm import CRMServer
from headwater_demo.logistics import LogisticsServer
from pipelines.warehouse import STATE_TABLE, open_warehouse
from tests._reliability import record
from tests.conftest import MARIADB_SERVER_URL, PG_URL
from tests.hostile_servers import Answer, HostileServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.mariadb,
              pytest.mark.reliability]

HEADWATER = str(Path(sys.executable).with_name("headwater"))
CRASHPOINTS = Path(__file__).resolve().parent / "crashpoints"
PAGES = 3
USER = "etl"
PLACES = ("command output", "log records", "Dagster event log", "Dagster instance storage",
          "state table", "DuckDB warehouse tables", "PostgreSQL warehouse tables")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class Secret:
    """One kind of credential: its values, searched for in every form they may take."""

    kind: str
    values: list[str]
    extra: list[str] = field(default_factory=list)

    def forms(self) -> set[str]:
        found = set(self.extra)
        for value in self.values:
            found |= {value, quote(value, safe=""), quote(value), quote_plus(value),
                      html.escape(value), b64(value)}
        return {form for form in found if len(form) >= 8}

    def occurrences(self, text: str) -> int:
        return sum(text.count(form) for form in self.forms())

    def context(self, text: str, width: int = 160) -> str | None:
        """Where in ``text`` a form first occurs, with what surrounds it."""
        for form in self.forms():
            at = text.find(form)
            if at >= 0:
                return text[max(0, at - width):at + len(form) + width]
        return None


def pem_lines(pem: bytes) -> list[str]:
    """A PEM key's base64 lines: any one of them in the open is key material."""
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-")]


# -- the estate -------------------------------------------------------------------------------

def guarded(allowed, *, echo_param: str | None = None) -> HostileServer:
    """A JSON API of three pages that answers 401 unless ``allowed(seen)``; with
    ``echo_param``, every next link repeats that query parameter (an API key)."""
    def respond(seen):
        if not allowed(seen):
            return Answer(401, {"Content-Type": "application/json"}, b'{"error": "denied"}')
        page = int(seen.query.get("page", ["1"])[0])
        headers = {"Content-Type": "application/json"}
        if page < PAGES:
            echoed = (f"{echo_param}={quote(seen.query[echo_param][0], safe='')}&"
                      if echo_param else "")
            headers["Link"] = f'</items?{echoed}page={page + 1}>; rel="next"'
        body = {"data": [{"id": page * 10 + i, "name": f"item {page}-{i}"} for i in range(3)]}
        return Answer(200, headers, json.dumps(body).encode())
    return HostileServer(respond)


@dataclass
class Estate:
    """Every source, the right and the wrong credentials, and the searched-for secrets."""

    connectors: str
    env: dict[str, str]
    wrong_env: dict[str, str]
    secrets: list[Secret]
    pg_role: str
    pg_password: str
    pg_warehouse_schema: str


def rest_table(name: str, url: str, auth: str, stream: str = "") -> str:
    stream = stream or ('path = "/items"\nrecord_path = "data"\nprimary_key = ["id"]\n'
                        'paginator = { kind = "link_header" }\n')
    return (f'[connectors.{name}]\nkind = "rest"\nbase_url = "{url}"\nauth = {auth}\n'
            f"retry = {{ max_attempts = 2, base_delay = 0 }}\n"
            f'[[connectors.{name}.streams]]\nname = "items"\n{stream}\n')


def soap_table(name: str, server: LogisticsServer, password_variable: str, digest: bool
               ) -> str:
    return (f'[connectors.{name}]\nkind = "soap"\nwsdl = "{server.wsdl_url}"\n'
            f'username = "{server.username}"\npassword = "${{{password_variable}}}"\n'
            f"digest = {str(digest).lower()}\nretry = {{ max_attempts = 2, base_delay = 0 }}\n"
            f'[[connectors.{name}.streams]]\nname = "shipments"\noperation = "ListShipments"\n'
            'record_path = "shipment"\nprimary_key = ["id"]\ncursor = "updatedAt"\n'
            'since_arg = "updatedFrom"\npaginator = { kind = "cursor", cursor_path = '
            '"nextPageToken", cursor_param = "pageToken", limit_param = "pageSize", '
            "limit = 10 }\n\n")


def relational_tables(role: str, pg_password_variable: str, maria: dict[str, str]) -> str:
    odbc = (f"Driver={{MariaDB Unicode}};Server=127.0.0.1;Port=3306;Database={maria['db']};"
            f"Uid={maria['user']};Pwd=${{ODBC_PASSWORD}}")
    retry = "retry = { max_attempts = 2, base_delay = 0 }\n"
    stream = 'name = "items"\ntable = "items"\nprimary_key = ["id"]\n'
    return (f'[connectors.pg]\nkind = "sql"\nschema = "{role}"\n{retry}'
            f'url = "postgresql+psycopg://{role}:${{{pg_password_variable}}}@127.0.0.1:5432/test"\n'
            f"[[connectors.pg.streams]]\n{stream}\n"
            f'[connectors.odbc]\nkind = "odbc"\nconnection_string = "{odbc}"\n{retry}'
            f"[[connectors.odbc.streams]]\n{stream}\n")


@contextlib.contextmanager
def databases(token: str) -> Iterator[dict[str, str]]:
    """A PostgreSQL role with a password, owning a source schema and a warehouse schema,
    and a MariaDB user with a password on a database of its own; all dropped after."""
    role, maria_user, maria_db = f"hw_secret_{token}", f"hw_sec_{token}", f"hw_secret_{token}"
    made = {"role": role, "pg_password": f"Pg-{token}-Pass.word", "warehouse": f"{role}_wh",
            "user": maria_user, "db": maria_db, "odbc_password": f"Odbc_{token}!pw"}
    admin, maria = sa.create_engine(PG_URL), sa.create_engine(MARIADB_SERVER_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{made['pg_password']}'"))
            for schema in (role, made["warehouse"]):
                conn.execute(sa.text(f"CREATE SCHEMA {schema} AUTHORIZATION {role}"))
            conn.execute(sa.text(f"CREATE TABLE {role}.items AS SELECT g AS id, "
                                 "'item ' || g AS name FROM generate_series(1, 5) g"))
            conn.execute(sa.text(f"ALTER TABLE {role}.items ADD PRIMARY KEY (id)"))
            conn.execute(sa.text(f"ALTER TABLE {role}.items OWNER TO {role}"))
        with maria.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{maria_db}`"))
            conn.execute(sa.text(f"CREATE USER '{maria_user}'@'%' IDENTIFIED BY "
                                 f"'{made['odbc_password']}'"))
            conn.execute(sa.text(f"GRANT ALL ON `{maria_db}`.* TO '{maria_user}'@'%'"))
            conn.execute(sa.text(f"CREATE TABLE `{maria_db}`.items (id INT PRIMARY KEY, "
                                 "name VARCHAR(20))"))
            conn.execute(sa.text(f"INSERT INTO `{maria_db}`.items VALUES (1, 'one'), "
                                 "(2, 'two'), (3, 'three')"))
        yield made
    finally:
        with admin.begin() as conn:
            for schema in (role, made["warehouse"]):
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 f"WHERE usename = '{role}'"))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        with maria.begin() as conn:
            conn.execute(sa.text(f"DROP USER IF EXISTS '{maria_user}'@'%'"))
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{maria_db}`"))
        admin.dispose()
        maria.dispose()


@contextlib.contextmanager
def estate(folder: Path) -> Iterator[Estate]:
    """Every source up, with the right credentials in ``env`` and wrong ones in
    ``wrong_env`` (the configuration reads them all as ``${VARIABLES}``)."""
    token, other = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]

    def credentials(token: str) -> dict[str, str]:
        return {"API_KEY_Q": f"Qk+{token}/Ek=", "API_KEY_H": f"Hk+{token}/Hd=",
                "BASIC_PW": f"Ba:{token}+pw", "BEARER": f"Bt.{token}_tok",
                "SOAP_DIGEST_PW": f"Sd&{token}>pw", "SOAP_TEXT_PW": f"St&{token}>pw"}

    right, wrong = credentials(token), credentials(other)  # no value inside another
    crm = CRMServer(accounts=20, tickets=0)
    digest_server = LogisticsServer(shipments=20, password=right["SOAP_DIGEST_PW"])
    text_server = LogisticsServer(shipments=20, password=right["SOAP_TEXT_PW"])
    key_file, wrong_key_file = folder / "jwt.pem", folder / "wrong-jwt.pem"
    key_file.write_bytes(crm.jwt_private_key_pem)
    wrong_key_file.write_bytes(RSAKey.generate_key(2048, private=True).as_pem(private=True))
    with contextlib.ExitStack() as up:
        made = up.enter_context(databases(token))
        for server in (crm, digest_server, text_server):
            up.enter_context(server)
        servers = {name: up.enter_context(guarded(allowed, **options))
                   for name, allowed, options in [
            ("echo", lambda s: s.query.get("api_key") == [right["API_KEY_Q"]],
             {"echo_param": "api_key"}),
            ("keyed", lambda s: s.headers.get("X-API-Key") == right["API_KEY_H"], {}),
            ("basic", lambda s: s.headers.get("Authorization") ==
             "Basic " + b64(f"{USER}:{right['BASIC_PW']}"), {}),
            ("bearer", lambda s: s.headers.get("Authorization") == f"Bearer {right['BEARER']}",
             {}),
        ]}
        accounts = ('path = "/api/accounts"\nrecord_path = "data"\nprimary_key = ["id"]\n'
                    'paginator = { kind = "cursor", cursor_path = "next_cursor", '
                    'cursor_param = "cursor", limit_param = "limit", limit = 5 }\n')
        connectors = "".join([
            rest_table("echo", servers["echo"].url(),
                       '{ kind = "api_key", key = "${API_KEY_Q}", query_param = "api_key" }'),
            rest_table("keyed", servers["keyed"].url(),
                       '{ kind = "api_key", key = "${API_KEY_H}", header = "X-API-Key" }'),
            rest_table("basic", servers["basic"].url(),
                       f'{{ kind = "basic", username = "{USER}", password = "${{BASIC_PW}}" }}'),
            rest_table("bearer", servers["bearer"].url(),
                       '{ kind = "bearer", token = "${BEARER}" }'),
            rest_table("crm", crm.url, f'{{ kind = "oauth2", token_url = "{crm.token_url}", '
                       f'client_id = "{crm.client_id}", client_secret = "${{CRM_SECRET}}", '
                       'method = "client_secret_post" }', accounts),
            rest_table("crmjwt", crm.url, f'{{ kind = "oauth2", token_url = "{crm.token_url}", '
                       f'client_id = "{crm.jwt_client_id}", method = "private_key_jwt", '
                       'private_key_file = "${JWT_KEY_FILE}" }', accounts),
            soap_table("soapdigest", digest_server, "SOAP_DIGEST_PW", digest=True),
            soap_table("soaptext", text_server, "SOAP_TEXT_PW", digest=False),
            relational_tables(made["role"], "PG_PASSWORD", made),
        ])
        right |= {"CRM_SECRET": crm.client_secret, "JWT_KEY_FILE": str(key_file),
                  "PG_PASSWORD": made["pg_password"], "ODBC_PASSWORD": made["odbc_password"]}
        wrong |= {"CRM_SECRET": f"Cs-{other}-wrong", "JWT_KEY_FILE": str(wrong_key_file),
                  "PG_PASSWORD": f"Pg-{other}-Wrong.word",
                  "ODBC_PASSWORD": f"Odbc_{other}!wrong"}
        wrong_pem = wrong_key_file.read_bytes()
        secrets = [
            Secret("API key, query parameter (echoed in next links)", [right["API_KEY_Q"]]),
            Secret("API key, header", [right["API_KEY_H"]]),
            Secret("basic auth password", [right["BASIC_PW"]],
                   [b64(f"{USER}:{right['BASIC_PW']}")]),
            Secret("bearer token", [right["BEARER"]]),
            Secret("OAuth2 client secret", [crm.client_secret]),
            Secret("OAuth2 private_key_jwt key", pem_lines(crm.jwt_private_key_pem)),
            Secret("WS-Security password (digest)", [right["SOAP_DIGEST_PW"]]),
            Secret("WS-Security password (text)", [right["SOAP_TEXT_PW"]]),
            Secret("PostgreSQL password (source and warehouse URLs)", [made["pg_password"]]),
            Secret("ODBC PWD= (MariaDB)", [made["odbc_password"]]),
            Secret("the wrong credentials of the failing runs",
                   [v for k, v in wrong.items() if k != "JWT_KEY_FILE"] + pem_lines(wrong_pem),
                   [b64(f"{USER}:{wrong['BASIC_PW']}")]),
        ]
        yield Estate(connectors, right, wrong, secrets, made["role"], made["pg_password"],
                     made["warehouse"])


# -- running it -------------------------------------------------------------------------------

@dataclass
class Command:
    """One command line to run, with its settings, and the exit status it must have."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    status: int = 0
    wrong: bool = False


DEBUG = {"HEADWATER_DEBUG": "1", "HEADWATER_LOG_LEVEL": "DEBUG"}
KILL_MID_READ = {"PYTHONPATH": str(CRASHPOINTS), "HEADWATER_TEST_KILL_AT": "read:3",
                 "HEADWATER_TEST_COMMIT_ROWS": "3"}
COMMANDS = [
    Command("check", ["check"], {"HEADWATER_LOG_LEVEL": "DEBUG"}),
    Command("discover", ["discover"], DEBUG),
    Command("run killed mid-read", ["run", "echo.items"], {**DEBUG, **KILL_MID_READ}, -9),
    Command("state show (a page checkpoint)", ["state", "show"]),
    Command("run", ["run"], DEBUG),
    Command("run again", ["run"], DEBUG),
    Command("state show", ["state", "show"]),
    Command("lineage", ["lineage"]),
    Command("run, wrong credentials", ["run"], DEBUG, status=1, wrong=True),
    Command("check, wrong credentials", ["check"], DEBUG, status=1, wrong=True),
]


def run_commands(folder: Path, config: str, estate: Estate) -> dict[str, str]:
    """Every command in ``folder`` on ``config``; the output of each."""
    outputs = {}
    for command in COMMANDS:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
        env |= (estate.wrong_env if command.wrong else estate.env) | command.env
        done = subprocess.run([HEADWATER, "--config", config, *command.args], cwd=folder,
                              capture_output=True, text=True, env=env, timeout=300, check=False)
        assert done.returncode == command.status, (command.name, done.stderr)
        outputs[command.name] = done.stdout + done.stderr
    return outputs


class Capture(logging.Handler):
    """Every log record of the process, formatted as a handler without filters would."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def materialize_all(config: Path, env: dict[str, str], instance) -> tuple[bool, list[str]]:
    """Every asset of ``config`` materialized in-process on ``instance``; whether it
    succeeded, and every log record of the process meanwhile."""
    from dagster import materialize

    from dagster_project import build_definitions

    capture, root = Capture(), logging.getLogger()
    level = root.level
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("HEADWATER_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        root.addHandler(capture)
        root.setLevel(logging.DEBUG)
        try:
            defs = build_definitions(config)
            result = materialize(defs.assets, resources=defs.resources, instance=instance,
                                 raise_on_error=False)
        finally:
            root.removeHandler(capture)
            root.setLevel(level)
    return result.success, capture.lines


def warehouse_contents(url: str) -> tuple[list[str], list[str]]:
    """The state table's rows, and every table's rows, as text."""
    with open_warehouse(url) as warehouse:
        tables = {t: warehouse.read_table(t).to_pylist() for t in warehouse.tables()}
    return [repr(tables.get(STATE_TABLE))], [f"{t}: {rows!r}" for t, rows in tables.items()]


def storage_files(root: Path) -> list[str]:
    return [path.read_bytes().decode("latin-1") for path in sorted(root.rglob("*"))
            if path.is_file()]


@dataclass
class Scan:
    """What was searched, by place, and what the runs did."""

    texts: dict[str, list[str]]
    outputs: dict[str, dict[str, str]]
    landed: dict[str, int]
    dagster: dict[str, bool]
    secrets: list[Secret]


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Scan:
    from dagster import DagsterInstance
    from dagster._serdes import serialize_value

    folder = tmp_path_factory.mktemp("secrets")
    texts: dict[str, list[str]] = {place: [] for place in PLACES}
    outputs: dict[str, dict[str, str]] = {}
    with estate(folder) as hw:
        pg_url = (f"postgresql://{hw.pg_role}:${{PG_PASSWORD}}@127.0.0.1:5432/test"
                  f"?schema={hw.pg_warehouse_schema}")
        warehouses = {"duckdb": f"duckdb:///{folder / 'duckdb' / 'warehouse.duckdb'}",
                      "postgresql": pg_url, "dagster": f"duckdb:///{folder / 'dagster.duckdb'}",
                      "dagster-wrong": f"duckdb:///{folder / 'dagster-wrong.duckdb'}"}
        for name, url in warehouses.items():
            (folder / name).mkdir(exist_ok=True)
            (folder / name / "headwater.toml").write_text(
                f'[warehouse]\nurl = "{url}"\n\n{hw.connectors}', "utf-8")
        for name in ("duckdb", "postgresql"):
            outputs[name] = run_commands(folder / name, "headwater.toml", hw)
            texts["command output"] += outputs[name].values()
        instance_root = folder / "instance"
        instance_root.mkdir()
        instance = DagsterInstance.local_temp(str(instance_root), overrides={"python_logs": {
            "managed_python_loggers": ["headwater", "zeep", "urllib3", "authlib"],
            "python_log_level": "DEBUG"}})
        dagster = {}
        for name, env in (("dagster", hw.env), ("dagster-wrong", hw.wrong_env)):
            dagster[name], records = materialize_all(folder / name / "headwater.toml", env,
                                                     instance)
            texts["log records"] += records
        for run in instance.get_runs():
            texts["Dagster event log"] += [serialize_value(entry)
                                           for entry in instance.all_logs(run.run_id)]
        instance.dispose()
        texts["Dagster instance storage"] = storage_files(instance_root)
        resolved = {**warehouses, "postgresql": pg_url.replace("${PG_PASSWORD}",
                                                               hw.pg_password)}
        landed = {}
        for name, url in resolved.items():
            state, tables = warehouse_contents(url)
            texts["state table"] += state
            place = "PostgreSQL" if name == "postgresql" else "DuckDB"
            texts[f"{place} warehouse tables"] += tables
            if name in ("duckdb", "postgresql", "dagster"):
                with open_warehouse(url) as warehouse:
                    landed |= {f"{name}:{t}": warehouse.row_count(t)
                               for t in warehouse.tables() if t.startswith("raw_")}
        return Scan(texts, outputs, landed, dagster, hw.secrets)


CONNECTORS = ("echo", "keyed", "basic", "bearer", "crm", "crmjwt", "soapdigest", "soaptext",
              "pg", "odbc")


def raw_table(connector: str) -> str:
    return f"raw_{connector}__{'shipments' if connector.startswith('soap') else 'items'}"


def test_no_secret_anywhere(scan: Scan) -> None:
    found, seen = {}, {}
    for secret in scan.secrets:
        for place in PLACES:
            count = sum(secret.occurrences(text) for text in scan.texts[place])
            record("secrets", f"{secret.kind}/{place}", secret=secret.kind, place=place,
                   occurrences=count)
            if count:
                found[(secret.kind, place)] = count
                seen[(secret.kind, place)] = next(filter(None, map(secret.context,
                                                                   scan.texts[place])))
    assert all(scan.texts[place] for place in PLACES), "a place had nothing to search"
    assert found == {}, "\n\n".join(f"{where}: ...{text}..." for where, text in seen.items())


def test_every_credential_was_used_and_every_wrong_one_refused(scan: Scan) -> None:
    for warehouse in ("duckdb", "postgresql", "dagster"):
        for connector in CONNECTORS:
            assert scan.landed.get(f"{warehouse}:{raw_table(connector)}", 0) > 0, \
                (warehouse, connector)
    assert scan.dagster == {"dagster": True, "dagster-wrong": False}
    for warehouse in ("duckdb", "postgresql"):
        failed = scan.outputs[warehouse]["run, wrong credentials"]
        for connector in set(CONNECTORS) - {"pg"}:  # the local PostgreSQL trusts 127.0.0.1
            assert f"headwater: error: {connector}" in failed, (warehouse, connector)
        assert "Traceback (most recent call last)" in failed  # HEADWATER_DEBUG=1 was on
        assert "DEBUG " in scan.outputs[warehouse]["run"]  # so was the debug log


def test_a_page_checkpoint_was_stored_and_shown_without_the_key(scan: Scan) -> None:
    for warehouse in ("duckdb", "postgresql"):
        shown = scan.outputs[warehouse]["state show (a page checkpoint)"]
        assert "echo.items" in shown and "page=3" in shown, shown


def test_the_search_finds_each_form_of_a_secret() -> None:
    secret = Secret("key", ["Ab+c/d=1234"], ["ZXRsOkFi"])
    text = ("Ab+c/d=1234 Ab%2Bc%2Fd%3D1234 Ab%2Bc/d%3D1234 Ab%2Bc%2Fd%3D1234 "
            f"{b64('Ab+c/d=1234')} ZXRsOkFi ***")
    assert secret.occurrences(text) == 6
    assert Secret("xml", ["Sd&abc>pw99"]).occurrences("<Password>Sd&amp;abc&gt;pw99<") == 1
