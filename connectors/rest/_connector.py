"""RESTConnector: JSON APIs page by page into Arrow batches, resumable at every page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

import orjson
import pyarrow as pa

from .._base import Connector
from .._batching import batch_records
from .._errors import ConfigurationError, DataContractError, RetriableSourceError
from .._incremental import CursorTracker
from .._redaction import redact
from .._retry import Retrier, RetryPolicy
from .._state import with_checkpoint
from .._stream import Stream
from ..http import DEFAULT_TIMEOUT, Auth, HTTPClient, RateLimit, describe
from ._paginate import Page, PageLoop, PageResult, Paginator
from ._records import (
    coerce,
    flatten,
    parse_instant,
    select_records,
    to_batch,
    unknown_fields,
)
from ._streams import RESTStream


class RESTConnector(Connector):
    """Reads JSON APIs declared as :class:`RESTStream` s.

    A source is a base URL, an auth object (``OAuth2ClientCredentials``, ``APIKey``,
    ``BasicAuth``, ``BearerToken``) and its streams; requests go through one
    :class:`~connectors.http.HTTPClient` (timeouts, retries with backoff honouring
    ``Retry-After``, one credential renewal on 401, an optional ``rate_limit``).

    Every page becomes one batch (or several, past ``batch_size`` records) whose
    checkpoint names the next page, so a stopped read resumes at the page after the
    last one stored. Incremental streams read the window after the saved cursor (see
    :class:`~connectors.Incremental`); records already delivered at the saved cursor
    are recognised by primary key.

    Hooks: override :meth:`parse_records` for bodies that need more than a record path
    and flattening, :meth:`auth` to build credentials in code, :meth:`since_value` to
    format the window start for the server.
    """

    kind = "rest"
    base_url: str | None = None

    def __init__(
        self,
        name: str | None = None,
        base_url: str | None = None,
        streams: Sequence[Stream] | None = None,
        *,
        auth: Auth | None = None,
        retry: RetryPolicy | Retrier | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_elapsed: float = 300.0,
        rate_limit: RateLimit | None = None,
        headers: Mapping[str, str] | None = None,
        batch_size: int = 10_000,
    ) -> None:
        super().__init__(name, streams)
        self.base_url = base_url or self.base_url
        if not self.base_url:
            raise ConfigurationError(f"connector {self.name!r} needs a base_url")
        for stream in self.streams:
            if not isinstance(stream, RESTStream):
                raise ConfigurationError(f"stream {stream.name!r}: a REST stream is a RESTStream")
        self.client = HTTPClient(auth=auth or self.auth(), retry=retry, timeout=timeout,
                                 max_elapsed=max_elapsed, rate_limit=rate_limit,
                                 headers=headers)
        self.batch_size = batch_size
        self.where = redact(self.base_url)
        self._schemas: dict[str, pa.Schema] = {}

    # -- hooks --------------------------------------------------------------------------

    def auth(self) -> Auth | None:
        """Credentials when none are passed in; override to build them in code."""
        return None

    def parse_records(self, stream: RESTStream, body: Any, headers: Mapping[str, str]
                      ) -> list[Mapping[str, Any]]:
        """The records of one page (nested objects are flattened afterwards, by the
        stream's ``nested`` rule)."""
        return select_records(body, stream.record_path)

    def since_value(self, stream: RESTStream, start: Any) -> str:
        """The window start as the server's ``since_param`` expects it (ISO 8601)."""
        if isinstance(start, dt.datetime):
            return start.isoformat()
        return str(start)

    # -- the contract -------------------------------------------------------------------

    def url_for(self, stream: RESTStream) -> str:
        return urljoin(self.base_url.rstrip("/") + "/", stream.path.lstrip("/"))

    def check(self) -> None:
        """Fetch the first page of every declared stream (credentials, URLs, paths)."""
        for stream in self.streams:
            self._first_records(stream)

    def discover(self) -> list[Stream]:
        """The declared streams with their schemas (declared, or inferred from page one)."""
        return [stream.with_schema(self.schema_for(stream)) for stream in self.streams]

    def schema_for(self, stream: Stream) -> pa.Schema:
        """The stream's declared schema, or one inferred from its first page."""
        if stream.schema is not None:
            return stream.schema
        if stream.name not in self._schemas:
            records = coerce(self._first_records(stream), None)
            if not records:
                raise ConfigurationError(
                    f"stream {stream.name!r}: the first page is empty, so its types cannot "
                    "be inferred; declare the stream's schema"
                )
            first = next(batch_records(records, None, len(records)))
            self._schemas[stream.name] = pa.schema([_widen(f) for f in first.schema])
        return self._schemas[stream.name]

    def _first_records(self, stream: Stream) -> list[Mapping[str, Any]]:
        stream = self._rest(stream)
        paginator = stream.paginator or Paginator()
        page = paginator.first(Page(self.url_for(stream), dict(stream.params)))
        body, headers = self._fetch_page(stream, page)
        return [flatten(r, stream.nested) for r in self.parse_records(stream, body, headers)]

    def read(self, stream: str | Stream, state: dict[str, Any] | None = None
             ) -> Iterator[pa.RecordBatch]:
        """Yield the stream page by page from ``state`` on, each batch checkpointed."""
        stream = self._rest(self.stream(stream))
        schema = self.schema_for(stream)
        wanted = [*stream.primary_key, *([stream.cursor_field] if stream.cursor_field else [])]
        missing = [name for name in wanted if name not in schema.names]
        if missing:
            raise ConfigurationError(
                f"stream {stream.name!r}: key or cursor field(s) {missing} are not in its "
                f"records; fields are: {schema.names}"
            )
        return self._read(stream, schema, dict(state or {}))

    def _read(self, stream: RESTStream, schema: pa.Schema, state: dict[str, Any]
              ) -> Iterator[pa.RecordBatch]:
        resume = state.get("resume") or {}
        tracker = (CursorTracker(stream.incremental, state.get("cursor"), state.get("boundary"),
                                 resume=resume) if stream.incremental else None)
        paginator = stream.paginator or Paginator()
        page: Page | None = (Page.from_state(resume["page"]) if resume.get("page")
                             else paginator.first(self._start(stream, tracker)))
        skip = int(resume.get("skip") or 0)  # records of that page already stored
        loop = PageLoop(stream.name)
        while page is not None:
            loop.visit(page)
            body, headers = self._fetch_page(stream, page)
            records = self.parse_records(stream, body, headers)
            following = paginator.next(page, PageResult(body, headers, len(records)))
            yield from self._page_batches(stream, schema, tracker, records[skip:], skip,
                                          page, following)
            page, skip = following, 0
        yield with_checkpoint(_empty(schema), tracker.state() if tracker else {})

    def _page_batches(self, stream: RESTStream, schema: pa.Schema,
                      tracker: CursorTracker | None, records: list[dict[str, Any]],
                      skipped: int, page: Page, following: Page | None
                      ) -> Iterator[pa.RecordBatch]:
        """One page's records in batches of at most ``batch_size``. A batch that ends
        inside the page resumes at the same page, past the records it held; the last
        one resumes at the next page."""
        for start in range(0, max(len(records), 1), self.batch_size):
            part = records[start:start + self.batch_size]
            end = start + len(part)
            kept = part if tracker is None else [
                r for r in part if self._admit(stream, tracker, r)]
            if end < len(records):
                resume: dict[str, Any] = {"page": page.to_state(), "skip": skipped + end}
            else:
                resume = {"page": following.to_state() if following else None}
            checkpoint: dict[str, Any] = {"resume": resume}
            if tracker is not None:
                checkpoint.update(tracker.saved())
                resume.update(tracker.resume())
            batch = _to_batch(stream, kept, schema) if kept else _empty(schema)
            _check_keys(stream, batch)
            yield with_checkpoint(batch, checkpoint)

    def _start(self, stream: RESTStream, tracker: CursorTracker | None) -> Page:
        params = dict(stream.params)
        if tracker is not None and stream.since_param and tracker.window.start is not None:
            params[stream.since_param] = self.since_value(stream, tracker.window.start)
        return Page(self.url_for(stream), params)

    @staticmethod
    def _admit(stream: RESTStream, tracker: CursorTracker, record: Mapping[str, Any]) -> bool:
        key = tuple(record.get(k) for k in stream.primary_key)
        return tracker.admit(parse_instant(record.get(stream.cursor_field)), key)

    def _fetch_page(self, stream: RESTStream, page: Page) -> tuple[Any, Mapping[str, str]]:
        """GET one page and parse it; a malformed body is retried like a failed request."""
        attempt = 0
        while True:
            attempt += 1
            response = self.client.request("GET", page.url, params=page.params)
            try:
                # Reading the whole body returns the connection to the pool for the
                # next page (closing the response would drop it).
                return orjson.loads(response.content), response.headers
            except orjson.JSONDecodeError as exc:
                what = (f"stream {stream.name!r}, page {describe('GET', page.url)} "
                        f"{dict(page.params)}")
                error = RetriableSourceError(f"{what} returned malformed JSON ({exc})")
            self.client.retrier.wait_or_raise(attempt, error, what)

    def _rest(self, stream: Stream) -> RESTStream:
        if not isinstance(stream, RESTStream):
            raise ConfigurationError(f"stream {stream.name!r}: a REST stream is a RESTStream")
        return stream

    def close(self) -> None:
        self.client.close()


def _to_batch(stream: RESTStream, records: list[Mapping[str, Any]], schema: pa.Schema
              ) -> pa.RecordBatch:
    """Records into a batch, flattened only when they hold fields the schema does not
    name (``address`` for ``address__city``): flat pages skip the per-record work."""
    if not unknown_fields(records, schema):
        return to_batch(records, schema, fields_checked=True)
    return to_batch([flatten(r, stream.nested) for r in records], schema)


def _check_keys(stream: RESTStream, batch: pa.RecordBatch) -> None:
    for key in stream.primary_key:
        if batch.column(key).null_count:
            raise DataContractError(
                f"stream {stream.name!r}: records without a value for primary-key field "
                f"{key!r}; declare a primary key every record has"
            )


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


def _widen(field: pa.Field) -> pa.Field:
    """Types inferred from one page, widened so later pages fit."""
    if pa.types.is_integer(field.type):
        return field.with_type(pa.int64())
    if pa.types.is_null(field.type):
        return field.with_type(pa.string())
    return field
