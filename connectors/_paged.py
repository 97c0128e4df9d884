"""What every page-by-page connector shares (REST, SOAP): pages to checkpointed batches.

A subclass says how to find a stream's first page (:meth:`PagedConnector.first_page`),
fetch one (:meth:`PagedConnector.fetch_page`) and pick its records
(:meth:`PagedConnector.parse_records`); the stream's paginator finds the pages after
it. This base turns the records into Arrow batches of the stream's declared or
inferred schema, filters incremental streams through a :class:`CursorTracker`, and
checkpoints every batch so a stopped read resumes at the next page, or inside a page
split into several batches.

A stream without a declared schema takes its types from the first records it reads, and
its state keeps them, so later runs neither fetch a page to infer them nor change them.
Fields that records bring later are added to the schema (declared or inferred) with the
types their values have; the runner then holds them to the stream's ``schema_contract``.

Streams are :class:`PagedStream` s: they carry ``record_path``, ``paginator`` and
``nested`` besides the usual key, cursor and schema.

Every read is bounded: at most ``max_pages`` pages, each response at most
``max_response_bytes`` (the subclass enforces it while reading), and a page that brings
no primary key the read has not seen stops it (:class:`~connectors.rest.PageProgress`).
A stored page never holds the credentials a server may echo in a next-page link
(:meth:`PagedConnector.stored_page`).
"""

from __future__ import annotations

import abc
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ._base import Connector
from ._batching import empty_batch
from ._errors import ConfigurationError, DataContractError, HeadwaterError
from ._incremental import CursorTracker
from ._paginate import Page, PageLoop, PageProgress, PageResult, Paginator
from ._records import AS_JSON, FLATTEN, flatten, parse_instant, to_batch, unknown_fields
from ._state import schema_from_state, schema_to_state, with_checkpoint
from ._stream import Stream
from .http import DEFAULT_MAX_RESPONSE_BYTES

#: Pages one read may fetch by default: 10 million records at 100 a page. A guard
#: against a source that pages for ever with ever-new records (repeats are caught
#: sooner); a read stopped by it has checkpointed every page before, so the next run
#: goes on from there.
DEFAULT_MAX_PAGES = 100_000


@dataclass(frozen=True, kw_only=True)
class PagedStream(Stream):
    """What every paged stream declares beside its key and cursor: where the records are
    in a page (``record_path``), how to find the next page (``paginator``; one page if
    ``None``), and how nested objects become columns (``nested``). ``max_pages`` and
    ``max_response_bytes`` override the connector's bounds for this stream."""

    record_path: str = ""
    paginator: Paginator | None = None
    nested: str = FLATTEN
    max_pages: int | None = None
    max_response_bytes: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for bound in ("max_pages", "max_response_bytes"):
            if getattr(self, bound) is not None and getattr(self, bound) < 1:
                raise ConfigurationError(f"stream {self.name!r}: {bound} must be at least 1")
        if self.nested not in (FLATTEN, AS_JSON):
            raise ConfigurationError(
                f"stream {self.name!r}: nested must be {FLATTEN!r} or {AS_JSON!r}"
            )
        if not self.primary_key:
            raise ConfigurationError(
                f"stream {self.name!r}: declare primary_key (the fields that identify a "
                "record) so pages can be merged and resumed without duplicates"
            )
        if self.reconcile_deletes is not None:
            raise ConfigurationError(
                f"stream {self.name!r}: reconcile_deletes needs a source that lists its keys "
                "alone, which a REST or SOAP source cannot; read the stream without a cursor "
                "instead (a full refresh removes the rows no longer at the source at every "
                "run)"
            )


class PagedConnector(Connector):
    """A connector that reads each stream as a sequence of pages of records.

    ``max_pages`` bounds the pages of one read and ``max_response_bytes`` the size of
    one response (``None``: unbounded), for every stream that does not set its own.
    """

    full_reads_mirror_source = True

    def __init__(self, name: str | None, streams: Sequence[Stream] | None, *,
                 batch_size: int = 10_000, max_pages: int = DEFAULT_MAX_PAGES,
                 max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        super().__init__(name, streams)
        if batch_size < 1:
            raise ConfigurationError(f"connector {self.name!r}: batch_size must be at least 1")
        if max_pages < 1 or (max_response_bytes is not None and max_response_bytes < 1):
            raise ConfigurationError(
                f"connector {self.name!r}: max_pages and max_response_bytes must be at least 1"
            )
        self.batch_size = batch_size
        self.max_pages = max_pages
        self.max_response_bytes = max_response_bytes
        self._schemas: dict[str, pa.Schema] = {}

    # -- what a subclass provides -------------------------------------------------------

    @abc.abstractmethod
    def first_page(self, stream: Any, tracker: CursorTracker | None) -> Page:
        """The request for the stream's first page, before its paginator adds to it."""

    @abc.abstractmethod
    def fetch_page(self, stream: Any, page: Page) -> tuple[Any, Mapping[str, str]]:
        """Fetch one page: its parsed body and its headers (empty if none)."""

    @abc.abstractmethod
    def parse_records(self, stream: Any, body: Any, headers: Mapping[str, str]
                      ) -> list[Mapping[str, Any]]:
        """The records of one page (flattened afterwards by the stream's ``nested`` rule)."""

    #: Query parameters that carry the connector's credentials (an API key in the
    #: query): left out of every stored page, applied again when the page is sent.
    credential_params: frozenset[str] = frozenset()

    def stored_page(self, page: Page) -> Page:
        """The page as a checkpoint stores it: without :attr:`credential_params` (a
        server may echo an API key in its next-page links). Override to leave out more;
        the page must still fetch the same records once the credentials are applied."""
        return page.without(self.credential_params)

    def response_limit(self, stream: Any) -> int | None:
        """The most bytes one response of ``stream`` may have (``None``: no bound)."""
        limit = getattr(stream, "max_response_bytes", None)
        return self.max_response_bytes if limit is None else limit

    def _fetch(self, stream: Any, page: Page) -> tuple[Any, Mapping[str, str]]:
        try:
            return self.fetch_page(stream, page)
        except DataContractError as exc:  # an oversized or refused response
            raise self._named(stream, exc) from None

    def _named(self, stream: Stream, error: HeadwaterError) -> HeadwaterError:
        """``error`` with a message that names the connector and the stream."""
        if error.message.startswith("connector "):
            return error
        where = (f"connector {self.name!r}, " if error.message.startswith("stream ")
                 else f"connector {self.name!r}, stream {stream.name!r}: ")
        named = type(error)(where + error.message)
        named.__cause__ = error
        return named

    def _naming_where(self, stream: Stream, batches: Iterator[pa.RecordBatch]
                      ) -> Iterator[pa.RecordBatch]:
        """The batches of a read; a data or configuration error names the connector and
        the stream."""
        try:
            yield from batches
        except (DataContractError, ConfigurationError) as error:
            raise self._named(stream, error) from None

    # -- the contract -------------------------------------------------------------------

    def check(self) -> None:
        """Fetch the first page of every declared stream (credentials, addresses)."""
        for stream in self.streams:
            try:
                self._first_records(stream)
            except (DataContractError, ConfigurationError) as error:
                raise self._named(stream, error) from None

    def source_columns(self, stream: str | Stream) -> list[tuple[str, str]]:
        """The fields of the records, with JSON's type names (what the source speaks),
        from the declared schema or the one inferred when the stream was read."""
        declared = self.stream(stream)
        schema = declared.schema or self._schemas.get(declared.name)
        if schema is None:
            return super().source_columns(stream)
        return [(f.name, _json_type(f.type)) for f in schema]

    def discover(self) -> list[Stream]:
        """The declared streams with their schemas (declared, or inferred from page one)."""
        return [stream.with_schema(self.schema_for(stream)) for stream in self.streams]

    def schema_for(self, stream: Stream) -> pa.Schema:
        """The stream's declared schema, or one inferred from its first page."""
        if stream.schema is not None:
            return stream.schema
        if stream.name not in self._schemas:
            try:
                records = self._first_records(stream)
                if not records:
                    raise ConfigurationError(
                        f"stream {stream.name!r}: the first page is empty, so its types "
                        "cannot be inferred; declare the stream's schema"
                    )
                self._schemas[stream.name] = inferred_schema(records)
            except (DataContractError, ConfigurationError) as error:
                raise self._named(stream, error) from None
        return self._schemas[stream.name]

    def _first_records(self, stream: Any) -> list[Mapping[str, Any]]:
        page = _paginator(stream).first(self.first_page(stream, None))
        body, headers = self._fetch(stream, page)
        return [flatten(r, stream.nested) for r in self.parse_records(stream, body, headers)]

    def read(self, stream: str | Stream, state: dict[str, Any] | None = None
             ) -> Iterator[pa.RecordBatch]:
        """Yield the stream page by page from ``state`` on, each batch checkpointed.

        A checkpoint taken after the last page (``{"resume": {"page": None}}``: the last
        batch of a one-page stream too) resumes to the end: no page is read again, and
        the state of the completed read follows.
        """
        stream = self.stream(stream)
        return self._naming_where(stream, self._read(stream, dict(state or {})))

    def _read(self, stream: Any, state: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        resume = state.get("resume") or {}
        tracker = (CursorTracker(stream.incremental, state.get("cursor"), state.get("boundary"),
                                 resume=resume) if stream.incremental else None)
        fields = ReadSchema(self, stream, state)
        if "page" in resume and resume["page"] is None:  # stored after the last page
            yield with_checkpoint(empty_batch(fields.known()), _final(tracker, fields))
            return
        paginator = _paginator(stream)
        page: Page | None = (Page.from_state(resume["page"]) if resume.get("page")
                             else paginator.first(self.first_page(stream, tracker)))
        skip = int(resume.get("skip") or 0)  # records of that page already stored
        loop, progress = PageLoop(stream.name), PageProgress(self.name, stream.name)
        max_pages = stream.max_pages or self.max_pages
        number = 0
        while page is not None:
            number += 1
            if number > max_pages:
                raise DataContractError(
                    f"connector {self.name!r}, stream {stream.name!r}: the source still had "
                    f"pages after max_pages={max_pages} in one read; every page before was "
                    "delivered and checkpointed, so the next run goes on from there: raise "
                    "max_pages for this stream if the source really holds that many"
                )
            loop.visit(page)
            body, headers = self._fetch(stream, page)
            records = self.parse_records(stream, body, headers)
            progress.check(number, self.stored_page(page), _keys(stream, records))
            following = paginator.next(page, PageResult(body, headers, len(records)))
            yield from self._page_batches(stream, fields, tracker, records[skip:], skip,
                                          page, following)
            page, skip = following, 0
        yield with_checkpoint(empty_batch(fields.known()), _final(tracker, fields))

    def _page_batches(self, stream: Any, fields: ReadSchema, tracker: CursorTracker | None,
                      records: Sequence[Mapping[str, Any]], skipped: int, page: Page,
                      following: Page | None) -> Iterator[pa.RecordBatch]:
        """One page's records in batches of at most ``batch_size``. A batch that ends
        inside the page resumes at the same page, past the records it held; the last
        one resumes at the next page."""
        for start in range(0, max(len(records), 1), self.batch_size):
            part = fields.fit(records[start:start + self.batch_size])
            end = start + len(part)
            kept = part if tracker is None else [r for r in part if _admit(stream, tracker, r)]
            if end < len(records):
                resume: dict[str, Any] = {"page": self.stored_page(page).to_state(),
                                          "skip": skipped + end}
            else:
                resume = {"page": self.stored_page(following).to_state() if following
                          else None}
            checkpoint: dict[str, Any] = {"resume": resume, **fields.state()}
            if tracker is not None:
                checkpoint.update(tracker.saved())
                resume.update(tracker.resume())
            schema = fields.known()
            batch = (to_batch(kept, schema, fields_checked=True, key=stream.primary_key)
                     if kept else empty_batch(schema))
            _check_keys(stream, batch)
            yield with_checkpoint(batch, checkpoint)


class ReadSchema:
    """The schema of one read: declared, kept in the stream's state, or inferred from
    the first records; records with fields it lacks add them, typed by their values."""

    def __init__(self, connector: PagedConnector, stream: Any, state: dict[str, Any]) -> None:
        self.connector, self.stream = connector, stream
        kept = schema_from_state(state["schema"]) if state.get("schema") else None
        declared = stream.schema
        if declared is not None and kept is not None:
            kept = _extended(declared, [f for f in kept if f.name not in declared.names])
        self.schema: pa.Schema | None = kept if kept is not None else declared
        # An inferred schema lives in the state; a declared one only once records add to it.
        self.in_state = kept is not None or declared is None
        if self.schema is not None:
            self._check_key_fields()
            connector._schemas[stream.name] = self.schema

    def fit(self, records: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
        """``records`` as the schema takes them (flattened where they nest), the schema
        extended by the fields they bring."""
        if not records:
            return records
        if self.schema is not None and not unknown_fields(records, self.schema):
            return records
        flat = [flatten(r, self.stream.nested) for r in records]
        if self.schema is None:
            self.schema = inferred_schema(flat)
            self._check_key_fields()
        else:
            new = [n for n in dict.fromkeys(k for r in flat for k in r)
                   if n not in self.schema.names]
            if new:
                self.schema = _extended(self.schema, [inferred_field(n, flat) for n in new])
                self.in_state = True
        # What the connector now knows of the stream (source_columns, discover).
        self.connector._schemas[self.stream.name] = self.schema
        return flat

    def known(self) -> pa.Schema:
        """The schema; inferred from the stream's first page when the read has had no
        records to infer it from (an empty batch needs types too)."""
        if self.schema is None:
            self.schema = self.connector.schema_for(self.stream)
            self.in_state = True
            self._check_key_fields()
        return self.schema

    def state(self) -> dict[str, Any]:
        """What the stream's state keeps of the schema."""
        if self.schema is None or not self.in_state:
            return {}
        return {"schema": schema_to_state(self.schema)}

    def _check_key_fields(self) -> None:
        stream = self.stream
        wanted = [*stream.primary_key, *([stream.cursor_field] if stream.cursor_field else [])]
        missing = [name for name in wanted if name not in self.schema.names]
        if missing:
            raise ConfigurationError(
                f"stream {stream.name!r}: key or cursor field(s) {missing} are not in its "
                f"records; fields are: {self.schema.names}"
            )


def _final(tracker: CursorTracker | None, fields: ReadSchema) -> dict[str, Any]:
    """The state a complete read leaves: the cursor, and the schema it keeps."""
    return {**(tracker.state() if tracker else {}), **fields.state()}


def inferred_schema(records: Sequence[Mapping[str, Any]]) -> pa.Schema:
    """Types of flat records, widened so later records fit."""
    names = dict.fromkeys(k for r in records for k in r)
    return pa.schema([inferred_field(name, records) for name in names])


def inferred_field(name: str, records: Sequence[Mapping[str, Any]]) -> pa.Field:
    """The field ``name`` typed by its values in ``records`` (text if they disagree)."""
    try:
        found = pa.array([r.get(name) for r in records]).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        found = pa.string()
    return _widen(pa.field(name, found))


def _extended(schema: pa.Schema, fields: Sequence[pa.Field]) -> pa.Schema:
    for field in fields:
        schema = schema.append(field)
    return schema


def _paginator(stream: PagedStream) -> Paginator:
    return stream.paginator or Paginator()


def _keys(stream: Any, records: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The primary keys of a page's records (flattened first where a key is nested)."""
    key_of = operator.itemgetter(*stream.primary_key)
    try:
        return list(map(key_of, records))
    except KeyError:  # a nested key field, or a record without it (refused later)
        return [key_of({**dict.fromkeys(stream.primary_key), **flatten(r, stream.nested)})
                for r in records]


def _admit(stream: Any, tracker: CursorTracker, record: Mapping[str, Any]) -> bool:
    key = tuple(record.get(k) for k in stream.primary_key)
    return tracker.admit(parse_instant(record.get(stream.cursor_field)), key)


def _check_keys(stream: Stream, batch: pa.RecordBatch) -> None:
    for key in stream.primary_key:
        if batch.column(key).null_count:
            raise DataContractError(
                f"stream {stream.name!r}: records without a value for primary-key field "
                f"{key!r}; declare a primary key every record has"
            )


def _widen(field: pa.Field) -> pa.Field:
    """Types inferred from one page, widened so later pages fit."""
    if pa.types.is_integer(field.type):
        return field.with_type(pa.int64())
    if pa.types.is_decimal(field.type):
        return field.with_type(pa.decimal128(38, max(field.type.scale, 0)))
    if pa.types.is_null(field.type):
        return field.with_type(pa.string())
    if pa.types.is_timestamp(field.type) and field.type.tz is not None:
        return field.with_type(pa.timestamp("us", tz="UTC"))  # offsets vary per value
    return field


def _json_type(arrow: pa.DataType) -> str:
    """The JSON type an Arrow type was read from."""
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_integer(arrow):
        return "integer"
    if pa.types.is_floating(arrow) or pa.types.is_decimal(arrow):
        return "number"
    if pa.types.is_timestamp(arrow) or pa.types.is_date(arrow):
        return "string (date-time)"
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return "array"
    if pa.types.is_struct(arrow):
        return "object"
    return "string"
