"""The connector contract every source kind implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from ._errors import ConfigurationError
from ._identity import SourceIdentity
from ._stream import Stream


class Connector(abc.ABC):
    """A source of streams of records.

    Subclass a kind base (``SQLConnector``, ...) rather than this class unless the
    source is of a new kind. The contract:

    - ``check()`` is a cheap connectivity and authentication probe that raises an
      actionable error (``AuthenticationError``, ``ConfigurationError``,
      ``RetriableSourceError``) or returns ``None``;
    - ``discover()`` returns the streams with their column types;
    - ``read(stream, state)`` yields Arrow record batches, each carrying in its schema
      metadata the checkpoint state that holds once it is stored
      (``connectors.checkpoint_of``). The final batch may be empty and carry only
      the state;
    - ``describe_source(stream)`` names what a stream reads (:class:`SourceIdentity`),
      for lineage and the catalog, without connecting.

    Use a connector in a ``with`` block: it calls :meth:`open` first and :meth:`close`
    at the end.
    """

    #: The technology of the source, as catalogs name it; kind bases set their own.
    kind: str = "custom"
    #: Whether a read of a stream without a cursor, begun without state, reads everything
    #: the source holds, so rows it does not bring were deleted at the source (``deletes``
    #: then defaults to ``"hard"``). The SQL, ODBC, REST and SOAP bases do; a connector of
    #: your own that reads only what is new by a checkpoint of its own must not say so.
    full_reads_mirror_source: bool = False

    #: The connector's name, used in table names and state keys.
    name: str = ""
    #: The declared streams; empty means: read what ``discover`` finds.
    streams: tuple[Stream, ...] = ()

    def __init__(self, name: str | None = None, streams: Iterable[Stream] | None = None) -> None:
        if name is not None:
            self.name = name
        if not self.name:
            raise ConfigurationError(f"{type(self).__name__} needs a name")
        if streams is not None:
            self.streams = tuple(streams)
        self.streams = tuple(self.streams)
        self._streams: dict[str, Stream] = {}
        for stream in self.streams:
            if stream.name in self._streams:
                raise ConfigurationError(
                    f"connector {self.name!r} declares stream {stream.name!r} twice"
                )
            self._streams[stream.name] = stream

    def stream(self, name: str | Stream) -> Stream:
        """The declared stream called ``name``; the error lists the known ones."""
        if isinstance(name, Stream):
            return name
        try:
            return self._streams[name]
        except KeyError:
            known = ", ".join(sorted(self._streams)) or "(none declared)"
            raise ConfigurationError(
                f"connector {self.name!r} has no stream {name!r}; its streams are: {known}"
            ) from None

    def primary_key(self, stream: str | Stream) -> tuple[str, ...]:
        """The columns that identify a row of ``stream``.

        Override when the source knows the key and a declaration may leave it out
        (``SQLConnector`` reflects it).
        """
        return self.stream(stream).primary_key

    def latest_cursor(self, stream: str | Stream) -> Any:
        """The largest cursor value the source holds now, for sensors that start a run
        when it moves; ``None`` when the connector cannot tell cheaply.

        Override when the source can answer with one cheap request (the SQL and ODBC
        connectors run ``SELECT max(cursor)``).
        """
        return None

    @abc.abstractmethod
    def check(self) -> None:
        """Probe connectivity and credentials; raise an actionable error on failure."""

    @abc.abstractmethod
    def discover(self) -> list[Stream]:
        """Return the streams this connector can read, with their Arrow schemas."""

    @abc.abstractmethod
    def read(
        self, stream: str | Stream, state: dict[str, Any] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Yield the stream's records from ``state`` on, as checkpointed record batches."""

    def read_keys(self, stream: str | Stream, state: dict[str, Any] | None = None
                  ) -> Iterator[pa.RecordBatch]:
        """Yield the primary keys of every record the source holds now, in key order, as
        checkpointed batches of the key columns (a stopped scan resumes from ``state``).

        Reconciliation compares them with the landed rows to find the ones deleted at
        the source. Override when the source can list its keys without the records (the
        SQL and ODBC connectors select the key columns in keyset chunks); the base
        cannot, and says so.
        """
        declared = self.stream(stream)
        raise ConfigurationError(
            f"connector {self.name!r}, stream {declared.name!r}: a {self.kind} connector "
            "cannot list a stream's keys alone, so deletes of an incremental stream cannot "
            "be reconciled; read the stream without a cursor (a full refresh removes the "
            "rows no longer at the source at every run)"
        )

    def describe_source(self, stream: str | Stream) -> SourceIdentity:
        """What ``stream`` reads, without credentials (no connection is made).

        Override when the source can say more than the stream's name (the kind bases
        name the table, endpoint or operation and where it lives).
        """
        declared = self.stream(stream)
        return SourceIdentity(self.name, self.kind, str(getattr(self, "where", "")),
                              declared.name)

    def source_columns(self, stream: str | Stream) -> list[tuple[str, str]]:
        """``(column, type)`` of what ``stream`` reads, with types as the source names
        them, for catalogs. The base gives the Arrow types of the stream's declared or
        discovered schema; kind bases override it with the source's own names.
        """
        declared = self.stream(stream)
        schema = declared.schema
        if schema is None:
            schema = next((s.schema for s in self.discover() if s.name == declared.name), None)
        return [(f.name, str(f.type)) for f in schema or []]

    def open(self) -> None:
        """Acquire what reads need before the first one. ``with connector:`` calls it.

        Override when the source needs set-up that should not happen at construction
        (start a tunnel or a local server, log in); the base does nothing.
        """

    def close(self) -> None:
        """Release connections. Override when the connector holds any."""

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
