"""A fresh machine, a fast start: nothing optional is imported before it is used.

pyodbc needs the unixODBC system library, zeep, polars, pandera, pandas and dagster are
heavy: each is imported only by the code that uses it, so `headwater --help`, a SQL
`run`, `import connectors` and the Dagster code location work without unixODBC, and an
ODBC connector without it fails with one line naming what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = ("pyodbc", "arrow_odbc", "zeep", "adbc_driver_postgresql", "polars", "pandera",
            "pandas", "dagster")
# Makes `import pyodbc` fail the way it does on a machine without unixODBC.
NO_UNIXODBC = textwrap.dedent("""
    import sys

    class _NoUnixODBC:
        def find_spec(self, name, path=None, target=None):
            if name == "pyodbc":
                raise ImportError("libodbc.so.2: cannot open shared object file: "
                                  "No such file or directory")
            return None

    sys.meta_path.insert(0, _NoUnixODBC())
""")


def _python(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def _loaded(code: str, cwd: Path = ROOT) -> list[str]:
    """The optional modules loaded once ``code`` has run (printed as its last line)."""
    probe = code + f"\nimport sys, json\nprint(json.dumps([m for m in {OPTIONAL!r} " \
                   "if m in sys.modules]))"
    done = _python(probe, cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture
def sql_estate(tmp_path: Path) -> Path:
    """A SQLite source with one incremental table and a config landing it into DuckDB."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE sales (id INTEGER PRIMARY KEY, amount NUMERIC(9,2), "
                             "changed TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO sales VALUES (1, 9.50, '2024-01-02 03:04:05'), "
                             "(2, 12.25, '2024-01-03 00:00:00')"))
    engine.dispose()
    config = tmp_path / "headwater.toml"
    config.write_text(textwrap.dedent(f"""
        [warehouse]
        url = "duckdb:///{(tmp_path / 'wh.duckdb').as_posix()}"

        [connectors.shop]
        kind = "sql"
        url = "sqlite:///{(tmp_path / 'shop.sqlite').as_posix()}"

        [[connectors.shop.streams]]
        table = "sales"
        cursor = "changed"
    """), "utf-8")
    return config


def test_help_loads_no_optional_stack() -> None:
    assert _loaded("from pipelines.cli import parser; parser().format_help()") == []


def test_a_sql_run_loads_no_odbc_soap_normalization_or_dagster(sql_estate: Path) -> None:
    code = textwrap.dedent(f"""
        from pipelines.cli import main
        assert main(["--config", {str(sql_estate)!r}, "run"]) == 0
    """)
    assert _loaded(code, sql_estate.parent) == []


def test_connectors_import_and_sql_work_without_unixodbc(sql_estate: Path) -> None:
    code = NO_UNIXODBC + textwrap.dedent(f"""
        import connectors
        from connectors import ODBCConnector, SQLConnector, RESTConnector, SOAPConnector
        import connectors.odbc
        from pipelines.cli import main
        assert main(["--config", {str(sql_estate)!r}, "run"]) == 0
    """)
    done = _python(code, sql_estate.parent)
    assert done.returncode == 0, done.stderr
    assert "2 rows -> raw_shop__sales" in done.stdout


def test_an_odbc_connector_without_unixodbc_fails_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "headwater.toml"
    config.write_text(textwrap.dedent(f"""
        [warehouse]
        url = "duckdb:///{(tmp_path / 'wh.duckdb').as_posix()}"
        [connectors.legacy]
        kind = "odbc"
        connection_string = "DSN=LEGACY"
        [[connectors.legacy.streams]]
        table = "ORDHDR"
    """), "utf-8")
    code = NO_UNIXODBC + textwrap.dedent(f"""
        import sys
        from pipelines.cli import main
        sys.exit(main(["--config", {str(config)!r}, "check"]))
    """)
    done = _python(code, tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "unixODBC library (libodbc.so.2)" in done.stderr
    assert "apt-get install unixodbc" in done.stderr
    assert not (tmp_path / "wh.duckdb").exists()


def test_odbc_without_the_pyodbc_package_names_the_package() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["pyodbc"] = None
        from connectors import ConfigurationError, ODBCConnector
        try:
            ODBCConnector("legacy", "DSN=LEGACY", [])
        except ConfigurationError as exc:
            print(exc)
    """)
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert "need the pyodbc package" in done.stdout
    assert "pip install pyodbc" in done.stdout


def test_the_dagster_code_location_loads_without_unixodbc(sql_estate: Path) -> None:
    code = NO_UNIXODBC + textwrap.dedent("""
        from dagster_project.definitions import defs
        keys = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
        print(keys)
    """)
    env = {**os.environ, "HEADWATER_CONFIG": str(sql_estate)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=sql_estate.parent, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "raw/shop/sales" in done.stdout
    assert "pyodbc" not in done.stderr


def _libodbc() -> str | None:
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        if "libodbc.so.2 " in line and "=>" in line:
            return line.split("=>")[1].strip()
    return None


def _fresh_copy(destination: Path) -> Path:
    """The tracked files of this checkout, as a fresh clone holds them (no .venv, no
    .headwater, no caches), including changes not committed yet."""
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(listing, cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return destination


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="hiding a system library needs root and unshare")
def test_quick_start_runs_the_demo_on_a_machine_without_unixodbc(tmp_path: Path) -> None:
    """The README's first command on a fresh copy, with libodbc hidden from it by a
    private mount namespace: it installs, lands, normalizes and runs the model step."""
    library = _libodbc()
    if library is None:
        pytest.skip("unixODBC is not installed here, so there is nothing to hide")
    clone = _fresh_copy(tmp_path / "clone")
    hidden = f"mount --bind /dev/null {library} && ldconfig -p | grep -c libodbc.so.2 ; " \
             f"python3 -c 'import ctypes; ctypes.CDLL(\"libodbc.so.2\")' 2>/dev/null " \
             f"&& echo LIBODBC-STILL-LOADS; make demo PYTHON={sys.base_prefix}/bin/python3"
    done = subprocess.run(["unshare", "-m", "sh", "-c", hidden], cwd=clone,
                          capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert "LIBODBC-STILL-LOADS" not in output
    assert done.returncode == 0, output[-4000:]
    assert "done: " in done.stdout and "rows landed" in done.stdout
    assert "model_account_health:" in done.stdout
    assert "deprecat" not in output.lower(), output
    assert "Warning" not in output, output
