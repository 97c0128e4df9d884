"""RESTConnector: JSON APIs page by page into Arrow batches, resumable at every page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

import orjson
import pyarrow as pa

from .._batching import empty_batch
from .._errors import ConfigurationError, DataContractError, RetriableSourceError
from .._incremental import CursorTracker
from .._paged import PagedConnector
from .._paginate import Page
from .._records import select_records
from .._redaction import redact
from .._retry import Retrier, RetryPolicy
from .._state import with_checkpoint
from .._stream import Stream
from ..http import DEFAULT_TIMEOUT, Auth, HTTPClient, RateLimit, describe
from ._streams import RESTStream


class RESTConnector(PagedConnector):
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
        super().__init__(name, streams, batch_size=batch_size)
        self.base_url = base_url or self.base_url
        if not self.base_url:
            raise ConfigurationError(f"connector {self.name!r} needs a base_url")
        for stream in self.streams:
            if not isinstance(stream, RESTStream):
                raise ConfigurationError(f"stream {stream.name!r}: a REST stream is a RESTStream")
        self.client = HTTPClient(auth=auth or self.auth(), retry=retry, timeout=timeout,
                                 max_elapsed=max_elapsed, rate_limit=rate_limit,
                                 headers=headers)
        self.where = redact(self.base_url)

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

    def read(self, stream: str | Stream, state: dict[str, Any] | None = None
             ) -> Iterator[pa.RecordBatch]:
        """Yield the stream page by page from ``state`` on, each batch checkpointed.

        A checkpoint taken after the last page (``{"resume": {"page": None}}``, the last
        batch of a one-page stream too) resumes to the end: no page is read again, and
        the state the completed read saves follows.
        """
        declared = self.stream(stream)
        resume = (state or {}).get("resume") or {}
        if "page" not in resume or resume["page"] is not None:
            return self._naming_where(declared, super().read(declared, state))
        tracker = (CursorTracker(declared.incremental, state.get("cursor"),
                                 state.get("boundary"), resume=resume)
                   if declared.incremental else None)
        final = with_checkpoint(empty_batch(self.schema_for(declared)),
                                tracker.state() if tracker else {})
        return iter([final])

    def _naming_where(self, stream: Stream, batches: Iterator[pa.RecordBatch]
                      ) -> Iterator[pa.RecordBatch]:
        """The batches of a read; a data error names the connector and the stream."""
        try:
            yield from batches
        except DataContractError as error:
            if error.message.startswith("connector "):
                raise
            where = (f"connector {self.name!r}, " if error.message.startswith("stream ")
                     else f"connector {self.name!r}, stream {stream.name!r}: ")
            raise DataContractError(where + error.message) from error

    def url_for(self, stream: RESTStream) -> str:
        return urljoin(self.base_url.rstrip("/") + "/", stream.path.lstrip("/"))

    def first_page(self, stream: RESTStream, tracker: CursorTracker | None) -> Page:
        params = dict(stream.params)
        if tracker is not None and stream.since_param and tracker.window.start is not None:
            params[stream.since_param] = self.since_value(stream, tracker.window.start)
        return Page(self.url_for(stream), params)

    def fetch_page(self, stream: RESTStream, page: Page) -> tuple[Any, Mapping[str, str]]:
        """GET one page and parse it; a malformed body is retried like a failed request."""
        attempt = 0
        while True:
            attempt += 1
            response = self.client.request("GET", page.url, params=page.arguments)
            try:
                # Reading the whole body returns the connection to the pool for the
                # next page (closing the response would drop it).
                return orjson.loads(response.content), response.headers
            except orjson.JSONDecodeError as exc:
                what = (f"stream {stream.name!r}, page {describe('GET', page.url)} "
                        f"{page.arguments}")
                error = RetriableSourceError(f"{what} returned malformed JSON ({exc})")
            self.client.retrier.wait_or_raise(attempt, error, what)

    def close(self) -> None:
        self.client.close()
