"""pandera sets PYARROW_IGNORE_TIMEZONE on import; nothing of ours may lose offsets to it."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pyarrow as pa

from connectors._records import to_batch

SAO_PAULO = dt.timezone(dt.timedelta(hours=-3))
SCHEMA = pa.schema([("at", pa.timestamp("us", tz="UTC"))])


def test_importing_normalization_leaves_pyarrow_converting_offsets() -> None:
    probe = (
        "import os, datetime as dt, pyarrow as pa, normalization\n"
        "tz = dt.timezone(dt.timedelta(hours=-3))\n"
        "value = pa.array([dt.datetime(2024, 1, 1, 1, 52, tzinfo=tz)],"
        " pa.timestamp('us', tz='UTC'))[0].as_py()\n"
        "print(os.environ.get('PYARROW_IGNORE_TIMEZONE'), value.hour)\n"
    )
    env_free = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, env=env_free)
    assert done.stdout.split() == ["None", "4"]


def test_aware_datetimes_reach_arrow_as_the_same_instant_even_with_the_variable_set(
        monkeypatch) -> None:
    monkeypatch.setenv("PYARROW_IGNORE_TIMEZONE", "1")
    records = [{"at": dt.datetime(2024, 1, 1, 1, 52, 27, tzinfo=SAO_PAULO)}]

    batch = to_batch(records, SCHEMA)

    assert batch.column(0)[0].as_py() == dt.datetime(2024, 1, 1, 4, 52, 27, tzinfo=dt.UTC)
