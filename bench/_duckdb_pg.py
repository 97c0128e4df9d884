"""DuckDB's own PostgreSQL scanner, the fastest peer of ``headwater run``.

The pinned DuckDB cannot download its extensions here, and the registry packages them only
for DuckDB 1.4.4: ``duckdb-ext-postgres`` ships ``duckdb_ext/extensions/v1.4.4/<platform>/
postgres_scanner.duckdb_extension``, which ``LOAD postgres`` finds once the connection's
``extension_directory`` points at ``duckdb_ext/extensions``. So the scanner runs in a
throwaway venv of its own, built once and cached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from _harness import CHILD_TIMEOUT_S

VERSION = "1.4.4"
PACKAGES = (f"duckdb=={VERSION}", "duckdb-ext-postgres==1.4.4.20260205")
VENV = (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "headwater-bench" / "duckdb144")
LIBPQ_DSN = "dbname=test user=postgres host=127.0.0.1 port=5432"

# The script run in the throwaway venv; the caller times the whole process, imports
# included, as it times `headwater run`.
SCRIPT = """
import json
import sys

import duckdb

path, extensions, source, dsn = sys.argv[1:5]
con = duckdb.connect(path, config={"extension_directory": extensions,
                                   "autoinstall_known_extensions": False,
                                   "autoload_known_extensions": False})
con.execute("LOAD postgres")
con.execute(f"ATTACH '{dsn}' AS pg (TYPE postgres)")
con.execute(f"CREATE TABLE t AS SELECT * FROM pg.{source}")
rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
loaded_from = con.execute("SELECT install_path FROM duckdb_extensions() "
                          "WHERE extension_name = 'postgres_scanner' AND loaded").fetchall()
con.close()
print(json.dumps({"rows": rows, "duckdb": duckdb.__version__,
                  "loaded_from": loaded_from[0][0] if loaded_from else None}))
"""


@dataclass(frozen=True)
class DuckDBScanner:
    """The throwaway venv holding DuckDB 1.4.4 and its packaged postgres extension."""

    python: Path
    extension_directory: Path

    def command(self, warehouse: Path, source: str, dsn: str = LIBPQ_DSN) -> list[str]:
        """The script that lands ``source`` (``schema.table``) in a new ``warehouse`` file;
        its last stdout line is JSON: ``rows``, ``duckdb`` (version), ``loaded_from``."""
        return [str(self.python), "-c", SCRIPT, str(warehouse), str(self.extension_directory),
                source, dsn]


def duckdb_scanner() -> DuckDBScanner:
    """Build the venv once (cached across runs); check the extension is where DuckDB will
    look: ``<extension_directory>/v<version>/<platform>/postgres_scanner.duckdb_extension``."""
    python, marker = VENV / "bin" / "python", VENV / ".installed"
    wanted = " ".join(PACKAGES)
    if not marker.exists() or marker.read_text().strip() != wanted:
        print(f"building {VENV} with {wanted} ...", flush=True)
        shutil.rmtree(VENV, ignore_errors=True)
        VENV.parent.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True, timeout=CHILD_TIMEOUT_S)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PACKAGES],
                       check=True, timeout=CHILD_TIMEOUT_S)
        marker.write_text(wanted + "\n")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S).stdout.strip()
    extensions = Path(purelib) / "duckdb_ext" / "extensions"
    found = sorted(extensions.glob(f"v{VERSION}/*/postgres_scanner.duckdb_extension"))
    if not found:
        raise SystemExit(f"no postgres_scanner.duckdb_extension for DuckDB {VERSION} under "
                         f"{extensions}; remove {VENV} to rebuild it")
    print(f"DuckDB {VERSION} postgres extension: {found[0]}")
    return DuckDBScanner(python, extensions)
