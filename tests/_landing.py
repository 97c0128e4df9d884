"""A paced source and a one-run child process, for tests of concurrent and killed runs.

``python -m tests._landing '<json>'`` lands one stream of :class:`Paced` into a warehouse
and prints one JSON line describing the run, or, like the command line, one line
``headwater: error: ...`` on stderr and exit status 1. :func:`start_together` starts such
children and releases them at the same instant.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors import Connector, HeadwaterError, Incremental, Stream, with_checkpoint

SCHEMA = pa.schema([("id", pa.int64()), ("label", pa.string())])


class Paced(Connector):
    """Ids ``1..rows`` in batches of ``batch``, ``pause`` seconds apart, each batch a
    checkpoint (``{"after": last id}``); every stream holds the same ids."""

    name = "paced"

    def __init__(self, streams: tuple[str, ...] = ("items",), rows: int = 1000,
                 batch: int = 100, pause: float = 0.1) -> None:
        super().__init__(streams=[Stream(s, primary_key=("id",), incremental=Incremental("id"))
                                  for s in streams])
        self.rows, self.batch, self.pause = rows, batch, pause

    def check(self) -> None:
        return None

    def discover(self) -> list[Stream]:
        return list(self.streams)

    def read(self, stream, state=None):
        window = stream.incremental
        first = state["after"] + 1 if state else (window.start or 1)
        end = min(window.end or self.rows + 1, self.rows + 1)
        for start in range(first, end, self.batch):
            ids = list(range(start, min(start + self.batch, end)))
            batch = pa.RecordBatch.from_pydict(
                {"id": ids, "label": [f"{stream.name}-{i}" for i in ids]}, schema=SCHEMA)
            time.sleep(self.pause)
            yield with_checkpoint(batch, {"after": ids[-1]})


def land(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one stream as ``spec`` says; what happened, with wall-clock times."""
    from pipelines.runner import run_stream
    from pipelines.warehouse import _postgres, open_warehouse  # noqa: F401 - loaded before the start

    if "barrier" in spec:  # line up with the other processes of the test
        barrier = Path(spec["barrier"])
        (barrier / f"ready-{spec['run_id']}").touch()
        while not (barrier / "go").exists():
            time.sleep(0.005)
    commits: list[float] = []
    options = {k: spec[k] for k in ("lock_wait", "commit_rows", "commit_seconds") if k in spec}
    window = tuple(spec["window"]) if "window" in spec else None
    connector = Paced((spec["stream"],), **spec.get("source", {}))
    with open_warehouse(spec["warehouse"]) as warehouse:
        started = time.time()
        result = run_stream(connector, spec["stream"], warehouse, run_id=spec["run_id"],
                            window=window, on_batch=lambda r: commits.append(time.time()),
                            **options)
        ended = time.time()
    return {"run_id": spec["run_id"], "rows": result.rows, "started": started,
            "ended": ended, "commits": commits}


ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Finished:
    """How one child run ended: its report (exit 0) or its one error line (exit 1)."""

    returncode: int
    report: dict[str, Any] | None
    stderr: str
    pid: int


@contextmanager
def start_together(specs: list[dict[str, Any]], tmp_path: Path, timeout: float = 120
                   ) -> Iterator[list[subprocess.Popen]]:
    """Start one child per spec and release them at the same instant (once every one
    has imported everything); any still running at the end is killed."""
    barrier = tmp_path / f"barrier-{uuid.uuid4().hex[:6]}"
    barrier.mkdir()
    children = [
        subprocess.Popen([sys.executable, "-m", "tests._landing",
                          json.dumps({**spec, "barrier": str(barrier)})],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for spec in specs
    ]
    try:
        deadline = time.monotonic() + timeout
        while len(list(barrier.glob("ready-*"))) < len(children):
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                raise AssertionError(f"a child never got ready: {[c.args for c in children]}")
            time.sleep(0.02)
        (barrier / "go").touch()
        yield children
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
            for pipe in (child.stdout, child.stderr):
                if pipe is not None:
                    pipe.close()


def run_together(specs: list[dict[str, Any]], tmp_path: Path, timeout: float = 120
                 ) -> list[Finished]:
    """Run one child per spec, all released at once; how each ended."""
    finished = []
    with start_together(specs, tmp_path, timeout) as children:
        for child in children:
            out, err = child.communicate(timeout=timeout)
            report = json.loads(out) if child.returncode == 0 else None
            finished.append(Finished(child.returncode, report, err, child.pid))
    return finished


def main(argv: list[str]) -> int:
    try:
        print(json.dumps(land(json.loads(argv[0]))), flush=True)
    except HeadwaterError as exc:
        print(f"headwater: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
