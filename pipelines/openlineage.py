"""OpenLineage run events, so a data catalog can ingest what headwater's lineage knows.

Each event is a ``COMPLETE`` RunEvent for one written table: its input tables, and on
the output the ``schema`` and ``columnLineage`` dataset facets built from the same
:class:`ColumnLineage` declarations the CLI and the Dagster UI show. Events go to a file
(one JSON document per line) or are POSTed to an HTTP endpoint (Marquez's
``/api/v1/lineage``, for example): set ``HEADWATER_OPENLINEAGE_FILE`` or
``HEADWATER_OPENLINEAGE_URL``. Emitting is best effort: a failed POST is logged, never
fails the run that wrote the data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from connectors import redact
from normalization import ColumnLineage

PRODUCER = "https://github.com/headwater/headwater"
_RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
_SCHEMA_FACET = "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json"
_COLUMN_FACET = "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json"
_NAMESPACE_RUNS = uuid.UUID("8c5f3e1e-6f1b-4d0e-9a43-1f6f4f1f0a11")
log = logging.getLogger(__name__)


def run_uuid(run_id: str) -> str:
    """OpenLineage wants a UUID: a Dagster run id is one, a CLI run id is mapped to one."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(_NAMESPACE_RUNS, run_id))


def run_event(*, job: str, run_id: str, namespace: str, output: str,
              fields: Sequence[tuple[str, str, str]], lineage: Iterable[ColumnLineage],
              event_time: dt.datetime | None = None) -> dict[str, Any]:
    """A COMPLETE event for writing ``output`` in ``namespace`` (the warehouse).

    ``fields`` are the output's (name, type, description); the inputs are every table
    the lineage names.
    """
    lineage = list(lineage)
    inputs = sorted({table for item in lineage for table, _ in item.sources})
    column_fields = {
        item.column: {"inputFields": [
            {"namespace": namespace, "name": table, "field": column,
             "transformations": [{"type": "DIRECT" if not item.derived_from else "INDIRECT",
                                  "subtype": "TRANSFORMATION",
                                  "description": item.transform}]}
            for table, column in item.sources]}
        for item in lineage if item.sources
    }
    return {
        "eventType": "COMPLETE",
        "eventTime": (event_time or dt.datetime.now(dt.UTC)).isoformat().replace("+00:00", "Z"),
        "run": {"runId": run_uuid(run_id)},
        "job": {"namespace": "headwater", "name": job},
        "inputs": [{"namespace": namespace, "name": table} for table in inputs],
        "outputs": [{"namespace": namespace, "name": output, "facets": {
            "schema": {"_producer": PRODUCER, "_schemaURL": _SCHEMA_FACET,
                       "fields": [{"name": n, "type": t, **({"description": d} if d else {})}
                                  for n, t, d in fields]},
            "columnLineage": {"_producer": PRODUCER, "_schemaURL": _COLUMN_FACET,
                              "fields": column_fields},
        }}],
        "producer": PRODUCER,
        "schemaURL": _RUN_EVENT,
    }


class OpenLineageEmitter:
    """Writes events to a file and/or POSTs them to an endpoint; does nothing without
    either."""

    def __init__(self, file: str | Path | None = None, url: str | None = None,
                 timeout: float = 10.0) -> None:
        self.file = Path(file) if file else None
        self.url = url
        self.timeout = timeout
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OpenLineageEmitter:
        environ = os.environ if environ is None else environ
        return cls(environ.get("HEADWATER_OPENLINEAGE_FILE") or None,
                   environ.get("HEADWATER_OPENLINEAGE_URL") or None)

    @property
    def enabled(self) -> bool:
        return self.file is not None or self.url is not None

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True)
        if self.file is not None:
            with self._lock:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                with self.file.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
        if self.url is not None:
            try:
                response = requests.post(self.url, data=line, timeout=self.timeout,
                                         headers={"Content-Type": "application/json"})
                response.raise_for_status()
            except requests.RequestException as exc:
                log.warning("OpenLineage event for %s not delivered to %s: %s",
                            event["job"]["name"], redact(self.url), redact(str(exc)))
