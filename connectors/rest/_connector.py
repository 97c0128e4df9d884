"""RESTConnector: JSON APIs page by page into Arrow batches, resumable at every page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

import orjson

from .._errors import ConfigurationError, RetriableSourceError
from .._identity import SourceIdentity
from .._incremental import CursorTracker
from .._paged import DEFAULT_MAX_PAGES, PagedConnector
from .._paginate import Page
from .._records import select_records
from .._redaction import redact
from .._retry import Retrier, RetryPolicy
from .._stream import Stream
from ..http import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    Auth,
    HTTPClient,
    RateLimit,
    describe,
)
from ._streams import RESTStream


class RESTConnector(PagedConnector):
    """Reads JSON APIs declared as :class:`RESTStream` s.

    A source is a base URL, an auth object (``OAuth2ClientCredentials``, ``APIKey``,
    ``BasicAuth``, ``BearerToken``) and its streams; requests go through one
    :class:`~connectors.http.HTTPClient` (retries with backoff honouring
    ``Retry-After``, one credential renewal on 401, an optional ``rate_limit``).
    Each attempt has ``deadline`` seconds from connect to last byte (``timeout`` bounds
    each socket operation inside it); ``max_elapsed`` bounds a page's request with all
    its retries. A response over ``max_response_bytes`` fails at the limit, and a read
    stops after ``max_pages`` pages or at a page that brings no new primary key
    (streams may set their own ``max_pages`` and ``max_response_bytes``).

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
        deadline: float = DEFAULT_DEADLINE,
        max_elapsed: float = 300.0,
        rate_limit: RateLimit | None = None,
        headers: Mapping[str, str] | None = None,
        batch_size: int = 10_000,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(name, streams, batch_size=batch_size, max_pages=max_pages,
                         max_response_bytes=max_response_bytes)
        self.base_url = base_url or self.base_url
        if not self.base_url:
            raise ConfigurationError(f"connector {self.name!r} needs a base_url")
        for stream in self.streams:
            if not isinstance(stream, RESTStream):
                raise ConfigurationError(f"stream {stream.name!r}: a REST stream is a RESTStream")
        self.client = HTTPClient(auth=auth or self.auth(), retry=retry, timeout=timeout,
                                 deadline=deadline, max_elapsed=max_elapsed,
                                 rate_limit=rate_limit, headers=headers,
                                 max_response_bytes=max_response_bytes)
        self.where = redact(self.base_url)

    def describe_source(self, stream: str | Stream) -> SourceIdentity:
        """``GET <path>`` at the base URL."""
        declared = self.stream(stream)
        path = getattr(declared, "path", declared.name)
        return SourceIdentity(self.name, self.kind, self.where, f"GET {path}", "endpoint")

    @property
    def credential_params(self) -> frozenset[str]:  # type: ignore[override]
        return self.client.auth.query_params

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

    def url_for(self, stream: RESTStream) -> str:
        return urljoin(self.base_url.rstrip("/") + "/", stream.path.lstrip("/"))

    def first_page(self, stream: RESTStream, tracker: CursorTracker | None) -> Page:
        params = dict(stream.params)
        if tracker is not None and stream.since_param and tracker.window.start is not None:
            params[stream.since_param] = self.since_value(stream, tracker.window.start)
        return Page(self.url_for(stream), params)

    def fetch_page(self, stream: RESTStream, page: Page) -> tuple[Any, Mapping[str, str]]:
        """GET one page and parse it; a malformed body is retried like a failed request,
        within the same attempts and ``max_elapsed``."""
        started, attempt = self.client.clock(), 0
        limit = self.response_limit(stream)
        while True:
            attempt += 1
            response = self.client.request("GET", page.url, params=page.arguments,
                                           max_bytes=limit)
            try:
                return orjson.loads(response.content), response.headers
            except orjson.JSONDecodeError as exc:
                what = (f"stream {stream.name!r}, page {describe('GET', page.url)} "
                        f"{page.arguments}")
                error = RetriableSourceError(f"{what} returned malformed JSON ({exc})")
            self.client.wait_or_raise(attempt, error, what, started)

    def close(self) -> None:
        self.client.close()
