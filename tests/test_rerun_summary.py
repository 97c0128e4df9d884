"""A rerun says what it re-read: rows behind the saved cursor (the lag margin that lands
late commits) are not reported as new."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import sqlalchemy as sa

from pipelines.cli import main


def test_a_rerun_reports_the_lag_margin_apart_from_new_rows(tmp_path: Path, capsys) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'src.sqlite'}")
    start = dt.datetime(2024, 1, 1, 12, 0)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, at TIMESTAMP)"))
        for i in range(10):  # one a minute: the last five within the default 5-minute lag
            conn.execute(sa.text("INSERT INTO items VALUES (:i, :at)"),
                         {"i": i, "at": start + dt.timedelta(minutes=i)})
    config = tmp_path / "headwater.toml"
    config.write_text(textwrap.dedent(f"""
        [warehouse]
        url = "duckdb:///{tmp_path.as_posix()}/wh.duckdb"
        [connectors.src]
        url = "sqlite:///{tmp_path.as_posix()}/src.sqlite"
        [[connectors.src.streams]]
        table = "items"
        cursor = "at"
    """), "utf-8")

    assert main(["--config", str(config), "run"]) == 0
    assert "src.items: 10 rows -> raw_src__items" in capsys.readouterr().out
    assert main(["--config", str(config), "run"]) == 0
    out = capsys.readouterr().out
    assert "src.items: no new rows (4 re-read behind the saved cursor, the lag margin" in out
    assert "done: 0 rows landed (4 re-read within the lag margin)" in out

    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items VALUES (10, :at)"),
                     {"at": start + dt.timedelta(minutes=10)})
    assert main(["--config", str(config), "run"]) == 0
    out = capsys.readouterr().out
    assert "src.items: 1 rows -> raw_src__items" in out
    assert "(4 re-read behind the saved cursor, the lag margin;" in out
    assert "11 rows in the table" in out
    engine.dispose()
