"""The configuration is parsed once into typed settings; every mistake is one line that
names the key path, and nothing is written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors import ConfigurationError, RetryPolicy, SQLConnector
from pipelines.cli import main
from pipelines.config import load_config, read_config

HEADER = """
[warehouse]
url = "duckdb:///{root}/wh.duckdb"
"""
SHOP = """
[connectors.shop]
kind = "sql"
url = "sqlite:///{root}/shop.sqlite"
{extra}
[[connectors.shop.streams]]
table = "sales"
cursor = "changed"
{stream}
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE sales (id INTEGER PRIMARY KEY, changed TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO sales VALUES (1, '2024-01-01 00:00:00')"))
    engine.dispose()
    return tmp_path


def write(root: Path, body: str) -> Path:
    path = root / "headwater.toml"
    path.write_text(textwrap.dedent(HEADER.format(root=root.as_posix()) + body), "utf-8")
    return path


def shop_config(root: Path, extra: str = "", stream: str = "") -> Path:
    return write(root, SHOP.format(root=root.as_posix(), extra=extra, stream=stream))


def failure(config: Path, capsys, *command: str) -> str:
    """Run a command that must fail: its one line of error, with nothing written."""
    status = main(["--config", str(config), *(command or ("run",))])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1, err
    assert not (config.parent / "wh.duckdb").exists()
    return err


@pytest.mark.parametrize(("extra", "stream", "expected"), [
    ("", 'cursr = "changed"',
     "connectors.shop.streams[0].cursr: unknown key; did you mean 'cursor'?"),
    ("chunk_sise = 10", "", "connectors.shop.chunk_sise: unknown key; did you mean "
                            "'chunk_size'?"),
    ("retyr = { max_attempts = 2 }", "", "connectors.shop.retyr: unknown key; did you mean "
                                         "'retry'?"),
    ("retry = { max_atempts = 2 }", "", "connectors.shop.retry.max_atempts: unknown key; "
                                        "did you mean 'max_attempts'?"),
])
def test_an_unknown_key_names_its_path_and_the_closest_valid_key(shop, capsys, extra, stream,
                                                                 expected) -> None:
    err = failure(shop_config(shop, extra, stream), capsys)
    assert expected in err
    assert "Valid keys:" in err


@pytest.mark.parametrize(("extra", "expected"), [
    ('chunk_size = "ten"', "connectors.shop.chunk_size: Input should be a valid integer"),
    ("chunk_size = 0", "connectors.shop.chunk_size: Input should be greater than or equal to 1"),
    ('fast_path = "sometimes"', "connectors.shop.fast_path"),
    ('schedule = "hourly"', "connectors.shop.schedule: 'hourly' is not a cron expression"),
    ('timezone = "Berlin"', "connectors.shop.timezone: 'Berlin' is not a time zone name"),
])
def test_a_wrong_type_or_value_names_its_path(shop, capsys, extra, expected) -> None:
    assert expected in failure(shop_config(shop, extra), capsys)


def test_a_wrong_value_in_a_stream_names_the_stream_path(shop, capsys) -> None:
    err = failure(shop_config(shop, stream='on_missing_cursor = "ignore"'), capsys)
    assert "connectors.shop.streams[0].on_missing_cursor: Input should be 'include', 'skip' " \
           "or 'fail'" in err


def test_a_missing_required_key_is_named(shop, capsys) -> None:
    config = write(shop, """
        [connectors.api]
        kind = "rest"
        [[connectors.api.streams]]
        name = "items"
        path = "/items"
    """)
    assert "connectors.api.base_url: required key is missing" in failure(config, capsys)


def test_a_missing_warehouse_is_named(tmp_path, capsys) -> None:
    (tmp_path / "headwater.toml").write_text("[connectors]\n", "utf-8")
    status = main(["--config", str(tmp_path / "headwater.toml"), "run"])
    assert status == 1
    assert "warehouse: required key is missing" in capsys.readouterr().err


def test_an_unknown_kind_is_named_with_the_known_ones(shop, capsys) -> None:
    config = write(shop, SHOP.format(root=shop.as_posix(), extra="", stream="")
                   .replace('kind = "sql"', 'kind = "sqll"'))
    err = failure(config, capsys)
    assert "connectors.shop.kind: unknown kind 'sqll' (did you mean 'sql'?)" in err
    assert "sql, odbc, rest, soap" in err


@pytest.mark.parametrize(("reference", "expected"), [
    ("nowhere_at_all.connectors:Shop", "connectors.mine.class: cannot import "
                                       "'nowhere_at_all.connectors'"),
    ("json:NotThere", "connectors.mine.class: 'json' has no 'NotThere'"),
    ("json", "connectors.mine.class: 'json' must name an object as \"package.module:NAME\""),
    ("json:dumps", "connectors.mine.class: <function dumps"),
])
def test_a_class_that_cannot_be_loaded_is_named(shop, capsys, reference, expected) -> None:
    config = write(shop, f'[connectors.mine]\nclass = "{reference}"\n')
    assert expected in failure(config, capsys)


def test_an_auth_kind_and_a_paginator_key_are_checked(shop, capsys) -> None:
    base = """
        [connectors.api]
        kind = "rest"
        base_url = "http://127.0.0.1:9"
        {auth}
        [[connectors.api.streams]]
        name = "items"
        path = "/items"
        primary_key = ["id"]
        {paginator}
    """
    config = write(shop, base.format(auth='auth = { kind = "oauth", token_url = "x" }',
                                     paginator=""))
    assert "connectors.api.auth: Input tag 'oauth' found using 'kind' does not match" in \
        failure(config, capsys)
    config = write(shop, base.format(auth="", paginator='paginator = { kind = "cursor", '
                                                        'cursor_pth = "next" }'))
    assert "connectors.api.streams.items.paginator.cursor_pth: unknown key for a cursor " \
           "paginator; did you mean 'cursor_path'?" in failure(config, capsys)


def test_values_are_converted_and_the_readme_names_accepted(shop) -> None:
    config = load_config(shop_config(shop, 'retry = { max_attempts = 2, base_delay = 0.1 }\n'
                                           'schema = "main"'))
    connector = config.build_connector("shop")
    assert isinstance(connector, SQLConnector)
    assert connector.retrier.policy == RetryPolicy(max_attempts=2, base_delay=0.1)
    assert connector.db_schema == "main"
    assert connector.stream("sales").incremental.cursor_field == "changed"
    connector.close()


def test_secrets_keys_and_url_passwords_are_registered_but_urls_are_not(tmp_path) -> None:
    from connectors import redact

    config = read_config(textwrap.dedent("""
        [warehouse]
        url = "postgresql://etl:Wh-Secret-1@db/warehouse"
        [connectors.api]
        kind = "rest"
        base_url = "https://api.example.com"
        [connectors.api.auth]
        kind = "oauth2"
        token_url = "https://auth.example.com/token"
        client_id = "etl"
        client_secret = "Cl-Secret-2"
    """), "test", None)
    assert config.connectors["api"].settings.auth.token_url.endswith("/token")
    text = redact("Wh-Secret-1 Cl-Secret-2 https://auth.example.com/token")
    assert "Wh-Secret-1" not in text and "Cl-Secret-2" not in text
    assert "https://auth.example.com/token" in text


def test_overrides_set_any_key_path(shop) -> None:
    config = load_config(shop_config(shop), ["connectors.shop.chunk_size=7",
                                            "connectors.shop.fast_path=false"])
    assert config.connectors["shop"].settings.chunk_size == 7
    assert config.connectors["shop"].settings.fast_path is False
    with pytest.raises(ConfigurationError, match=r"expected key\.path=value"):
        load_config(shop_config(shop), ["chunk_size"])


def test_a_package_beside_the_config_is_importable(shop, capsys) -> None:
    package = shop / "my_estate"
    package.mkdir()
    (package / "__init__.py").write_text("", "utf-8")
    (package / "sources.py").write_text(textwrap.dedent(f"""
        from connectors import Incremental, SQLConnector, SQLTable

        class Shop(SQLConnector):
            url = "sqlite:///{shop.as_posix()}/shop.sqlite"
            streams = (SQLTable(name="sales", table="sales",
                                incremental=Incremental("changed")),)

            def __init__(self, *args, region: str = "EU", **options):
                super().__init__(*args, **options)
                self.region = region
    """), "utf-8")
    config = write(shop, '[connectors.mine]\nclass = "my_estate.sources:Shop"\n'
                         'region = "NA"\nchunk_size = 500\n')
    loaded = load_config(config)
    connector = loaded.build_connector("mine")
    assert (connector.region, connector.chunk_size, connector.name) == ("NA", 500, "mine")
    connector.close()
    assert main(["--config", str(config), "run"]) == 0
    assert "mine.sales: 1 rows -> raw_mine__sales" in capsys.readouterr().out

    (shop / "wh.duckdb").unlink()
    bad = write(shop, '[connectors.mine]\nclass = "my_estate.sources:Shop"\nregoin = "NA"\n')
    err = failure(bad, capsys)
    assert "connectors.mine.regoin: unknown key for Shop (sql connector); did you mean " \
           "'region'?" in err


def test_a_class_connector_takes_toml_streams(shop, capsys) -> None:
    config = write(shop, textwrap.dedent(f"""
        [connectors.mine]
        class = "connectors:SQLConnector"
        url = "sqlite:///{shop.as_posix()}/shop.sqlite"
        [[connectors.mine.streams]]
        name = "sold"
        table = "sales"
        cursor = "changed"
    """))
    assert main(["--config", str(config), "run"]) == 0
    assert "mine.sold: 1 rows -> raw_mine__sold" in capsys.readouterr().out


@pytest.mark.parametrize(("command", "says"), [
    ("normalize", "no mappings declared in"),
    ("context", "no contexts declared in"),
    ("model", "no model steps declared in"),
    ("lineage", "no mappings, contexts or model steps declared in"),
])
def test_with_nothing_declared_the_later_stages_say_so_and_write_nothing(shop, capsys, command,
                                                                          says) -> None:
    config = shop_config(shop)
    assert main(["--config", str(config), command]) == 0
    out = capsys.readouterr().out
    assert says in out and str(config) in out
    assert not (shop / "wh.duckdb").exists()
    assert "account" not in out


def test_with_a_config_of_your_own_no_demo_asset_exists(shop) -> None:
    from dagster_project import build_definitions

    defs = build_definitions(shop_config(shop))
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"raw/shop/sales", "shop/source/sales"}
    assert defs.schedules == [] or list(defs.schedules) == []
    assert [s.name for s in defs.sensors] == ["headwater_automation"]


def test_column_types_are_declared_per_stream(shop, capsys) -> None:
    config = shop_config(shop, stream='column_types = { changed = "text" }')
    assert main(["--config", str(config), "discover"]) == 0
    assert "    changed: large_string" in capsys.readouterr().out
    bad = shop_config(shop, stream='column_types = { chnaged = "text" }')
    assert main(["--config", str(bad), "discover"]) == 1
    assert "chnaged" in capsys.readouterr().err


def test_a_url_from_the_environment_stays_readable_but_its_password_does_not(
        tmp_path, monkeypatch) -> None:
    from connectors import redact

    monkeypatch.setenv("API_URL", "https://api.example.com/v2")
    monkeypatch.setenv("DB_URL", "postgresql://etl:Pw-From-Env-7@db/erp")
    monkeypatch.setenv("API_TOKEN", "Tk-From-Env-8")
    read_config(textwrap.dedent("""
        [warehouse]
        url = "${DB_URL}"
        [connectors.api]
        kind = "rest"
        base_url = "${API_URL}"
        auth = { kind = "bearer", token = "${API_TOKEN}" }
    """), "test", None)
    shown = redact("https://api.example.com/v2 Pw-From-Env-7 Tk-From-Env-8")
    assert shown.startswith("https://api.example.com/v2 ")
    assert "Pw-From-Env-7" not in shown and "Tk-From-Env-8" not in shown


@pytest.mark.parametrize(("stream", "expected"), [
    ('deletes = "soft"', "connectors.shop.streams[0].deletes: deletes applies to full-refresh "
                         "streams (no cursor)"),
    ('schema_contract = "frozen"', "connectors.shop.streams[0].schema_contract: Input should "
                                   "be 'evolve', 'freeze', 'discard_columns' or 'discard_rows'"),
    ('reconcile_deletes = "all"', "connectors.shop.streams[0].reconcile_deletes: Input should "
                                  "be 'hard' or 'soft'"),
])
def test_a_wrong_delete_or_contract_setting_names_its_key_path(shop, capsys, stream,
                                                               expected) -> None:
    assert expected in failure(shop_config(shop, stream=stream), capsys)


def test_reconcile_deletes_needs_a_cursor_and_a_source_that_lists_its_keys(shop,
                                                                          capsys) -> None:
    config = write(shop, """
        [connectors.shop]
        url = "sqlite:///{root}/shop.sqlite"
        [[connectors.shop.streams]]
        table = "sales"
        reconcile_deletes = "hard"
    """.replace("{root}", shop.as_posix()))
    assert "connectors.shop.streams[0].reconcile_deletes: reconcile_deletes applies to " \
           "incremental streams" in failure(config, capsys)
    config = write(shop, """
        [connectors.api]
        kind = "rest"
        base_url = "http://127.0.0.1:9"
        [[connectors.api.streams]]
        name = "items"
        path = "/items"
        primary_key = ["id"]
        cursor = "updated_at"
        reconcile_deletes = "soft"
    """)
    assert "connectors.api.streams[0].reconcile_deletes: a REST or SOAP source cannot list " \
           "its keys alone" in failure(config, capsys)


def test_delete_and_contract_settings_reach_the_streams(shop) -> None:
    config = load_config(write(shop, """
        [connectors.shop]
        url = "sqlite:///{root}/shop.sqlite"
        [[connectors.shop.streams]]
        table = "sales"
        deletes = "soft"
        schema_contract = "discard_rows"
        [[connectors.shop.streams]]
        name = "recent"
        table = "sales"
        cursor = "changed"
        reconcile_deletes = "hard"
        [connectors.api]
        kind = "rest"
        base_url = "http://127.0.0.1:9"
        [[connectors.api.streams]]
        name = "items"
        path = "/items"
        primary_key = ["id"]
        schema_contract = "freeze"
    """.replace("{root}", shop.as_posix())))
    with config.build_connector("shop") as sql, config.build_connector("api") as rest:
        sales, recent, items = sql.stream("sales"), sql.stream("recent"), rest.stream("items")
    assert (sales.deletes_mode, sales.schema_contract) == ("soft", "discard_rows")
    assert (recent.deletes_mode, recent.reconcile_deletes) == (None, "hard")
    assert (items.deletes_mode, items.schema_contract) == ("hard", "freeze")


def test_a_rest_stream_declares_its_field_types_in_toml(shop, capsys) -> None:
    config = read_config(textwrap.dedent("""
        [warehouse]
        url = "duckdb:///unused.duckdb"
        [connectors.api]
        kind = "rest"
        base_url = "http://127.0.0.1:9"
        [[connectors.api.streams]]
        name = "items"
        path = "/items"
        primary_key = ["id"]
        columns = { id = "int64", total = "decimal(12,2)", changed = "timestamptz" }
    """), "test", None)
    connector = config.build_connector("api")
    schema = connector.stream("items").schema
    assert [str(f.type) for f in schema] == ["int64", "decimal128(12, 2)",
                                             "timestamp[us, tz=UTC]"]
    connector.close()
    bad = write(shop, textwrap.dedent("""
        [connectors.api]
        kind = "rest"
        base_url = "http://127.0.0.1:9"
        [[connectors.api.streams]]
        name = "items"
        path = "/items"
        primary_key = ["id"]
        columns = { total = "money" }
    """))
    assert "connectors.api.streams.items.columns.total: unknown column type 'money'" in \
        failure(bad, capsys)
