"""Kill points for the crash matrix (tests/test_crash_matrix.py), test-only.

Python imports ``sitecustomize`` at start-up from the first folder of ``sys.path`` that
has one, so a child started with this folder first on ``PYTHONPATH`` (and only such a
child) gets these hooks; product code carries none. Settings, from the environment:

``HEADWATER_TEST_KILL_AT=<point>:<n>``
    SIGKILL this process at the ``n``-th time it reaches ``point``:

    - ``startup``: the stream's lock is held and its state is being loaded (nothing read);
    - ``read``: the runner takes the ``n``-th batch from the reader (batches are waiting
      to be merged, more are in flight);
    - ``merge``: inside the ``n``-th merge transaction, rows and state written, before
      COMMIT;
    - ``commit``: the ``n``-th merge goes on to COMMIT while a thread kills the process
      within the next few milliseconds (before, during or just after the commit; a run
      that would exit sooner waits for the kill);
    - ``state``: inside the ``n``-th state write, the rows of its transaction written;
    - ``close``: the warehouse is being closed (DuckDB checkpoints its log then) and a
      thread kills the process within the next few milliseconds.
``HEADWATER_TEST_KILL_MARK=<file>``
    a line ``<point> <n>`` is appended to the file just before the kill, so the test
    can tell a kill at the point from a death anywhere else.
``HEADWATER_TEST_COMMIT_ROWS=<rows>``
    the runner's default rows per commit (many commits in a small table).
"""

from __future__ import annotations

import atexit
import importlib.abc
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

_KILL_AT = os.environ.get("HEADWATER_TEST_KILL_AT", "")
_POINT, _, _NTH = _KILL_AT.partition(":")
_REACHED: Counter[str] = Counter()
_RACE_SECONDS = {"commit": 0.004, "close": 0.02}


def _kill_now() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _reached(point: str) -> None:
    """Count a visit to ``point``; kill (at once, or racing what follows) on the n-th."""
    if point != _POINT:
        return
    _REACHED[point] += 1
    if _REACHED[point] != int(_NTH or 1):
        return
    mark = os.environ.get("HEADWATER_TEST_KILL_MARK")
    if mark:
        with open(mark, "a", encoding="utf-8") as marks:
            marks.write(f"{point} {_REACHED[point]}\n")
    race = _RACE_SECONDS.get(point)
    if race is None:
        _kill_now()
    delay = random.uniform(0, race)

    def kill_later() -> None:
        time.sleep(delay)
        _kill_now()

    threading.Thread(target=kill_later, daemon=True).start()
    # A run that would end before the kill lands waits for it: the race is lost only
    # in where the kill lands, never by exiting first.
    atexit.register(time.sleep, race + 10)


def _wrap(owner: Any, name: str, point: str) -> None:
    original = getattr(owner, name)

    def hooked(*args: Any, **kwargs: Any) -> Any:
        _reached(point)
        return original(*args, **kwargs)

    hooked.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(owner, name, hooked)


def _patch_base(module: Any) -> None:
    warehouse = module.Warehouse
    original = warehouse._before_commit

    def before_commit(self: Any, table: str) -> None:
        _reached("merge")
        _reached("commit")
        original(self, table)

    warehouse._before_commit = before_commit


def _patch_engine(class_name: str):
    def patch(module: Any) -> None:
        engine = getattr(module, class_name)
        _wrap(engine, "load_state", "startup")
        _wrap(engine, "_write_state", "state")
        _wrap(engine, "close", "close")
    return patch


def _patch_runner(module: Any) -> None:
    rows = os.environ.get("HEADWATER_TEST_COMMIT_ROWS")
    if rows:
        module.run_stream.__kwdefaults__["commit_rows"] = int(rows)
    _wrap(module, "checkpoint_of", "read")


_PATCHES = {
    "pipelines.warehouse._base": _patch_base,
    "pipelines.warehouse._duckdb": _patch_engine("DuckDBWarehouse"),
    "pipelines.warehouse._postgres": _patch_engine("PostgresWarehouse"),
    "pipelines.runner": _patch_runner,
}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds the modules above with the other finders and patches each once loaded."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in _PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        load = loader.exec_module

        def exec_module(module: Any) -> None:
            load(module)
            _PATCHES[name](module)

        loader.exec_module = exec_module
        return spec


if _POINT or os.environ.get("HEADWATER_TEST_COMMIT_ROWS"):
    sys.meta_path.insert(0, _AfterImport())
