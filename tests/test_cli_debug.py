"""``HEADWATER_DEBUG=1``: every failure the command line reports, headwater's own errors
included, comes with its traceback (redacted), on every path a failure takes: a failure
a multi-item command goes on past, a headwater error at the top, and any other exception
at the top. Without it, each failure is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEADWATER = str(Path(sys.executable).with_name("headwater"))
SECRET = "Debug-Trace-Secret-5150"

BOOM = '''
from connectors import SQLConnector


class Boom(SQLConnector):
    """A connector whose driver fails with something that is not a headwater error."""

    def check(self):
        raise RuntimeError("the driver exploded while connecting with " + self.url_secret)

    @property
    def url_secret(self):
        return self.engine.url.password
'''


def headwater(cwd: Path, *args: str, debug: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["SOURCE_PASSWORD"] = SECRET
    if debug is not None:
        env["HEADWATER_DEBUG"] = debug
    return subprocess.run([HEADWATER, "--config", "headwater.toml", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def write_config(cwd: Path, connector: str) -> None:
    (cwd / "headwater.toml").write_text(
        '[warehouse]\nurl = "duckdb:///w.duckdb"\n\n[connectors.src]\n' + connector, "utf-8")


UNREACHABLE = ('url = "postgresql+psycopg://etl:${SOURCE_PASSWORD}@127.0.0.1:1/test"\n'
               "retry = { max_attempts = 1 }\n")


def failure_paths(cwd: Path) -> dict[str, tuple[list[str], str, str]]:
    """Each path a failure reaches the user by: (arguments, the error type in the
    traceback, what the last line says)."""
    (cwd / "boom_estate.py").write_text(BOOM, "utf-8")
    return {
        "failures-add": (["check"], "connectors._errors.RetriableSourceError",
                         "headwater: error: src: check on postgresql database 'test'"),
        "top-level-headwater-error": (["run", "nothing"],
                                      "connectors._errors.ConfigurationError",
                                      "headwater: error: no connector 'nothing'"),
        "top-level-other-exception": (["--set", 'connectors.src.class="boom_estate:Boom"',
                                       "check"], "RuntimeError",
                                      "headwater: error: RuntimeError: the driver exploded "
                                      "while connecting with ***"),
    }


@pytest.mark.parametrize("path", ["failures-add", "top-level-headwater-error",
                                  "top-level-other-exception"])
def test_debug_prints_the_redacted_traceback_of_every_failure(tmp_path, path) -> None:
    write_config(tmp_path, UNREACHABLE)
    args, error_type, last_line = failure_paths(tmp_path)[path]

    result = headwater(tmp_path, *args, debug="1")

    assert result.returncode == 1
    assert "Traceback (most recent call last):" in result.stderr, result.stderr
    assert f"\n{error_type}: " in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(last_line), lines[-1]
    assert "set HEADWATER_DEBUG=1" not in result.stderr  # it is set
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("debug", [None, "0", ""], ids=["unset", "zero", "empty"])
@pytest.mark.parametrize("path", ["failures-add", "top-level-headwater-error",
                                  "top-level-other-exception"])
def test_without_debug_each_failure_is_one_line(tmp_path, path, debug) -> None:
    write_config(tmp_path, UNREACHABLE)
    args, _, last_line = failure_paths(tmp_path)[path]

    result = headwater(tmp_path, *args, debug=debug)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(last_line), result.stderr
    assert "Traceback" not in result.stderr
    if path == "top-level-other-exception":
        assert lines[0].endswith("(set HEADWATER_DEBUG=1 for the traceback)")
    assert SECRET not in result.stdout + result.stderr
