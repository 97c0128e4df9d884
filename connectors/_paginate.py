"""Paginators: which page comes after this one. Small objects with a pure core.

A paginator turns the request for one page and what came back (:class:`PageResult`)
into the request for the next page, or ``None`` at the end. It never sends anything;
the connector does, and refuses to request the same page twice (:class:`PageLoop`: a
source that hands back an old token would otherwise loop for ever) or to go on after a
page that brought no record it had not read already (:class:`PageProgress`: a next link
that is always new over the same records). Subclass :class:`Paginator` for a scheme not
here: override :meth:`Paginator.next` (and :meth:`Paginator.first` if the first page
needs parameters).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from ._errors import DataContractError
from ._records import value_at
from ._redaction import without_query_params


@dataclass(frozen=True)
class Page:
    """One page request: a URL and its query parameters."""

    url: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def with_params(self, **changes: Any) -> Page:
        return Page(self.url, {**self.params, **changes})

    @property
    def arguments(self) -> dict[str, Any]:
        """The parameters to send: without the paginators' own bookkeeping (``_hw_...``)."""
        return {k: v for k, v in self.params.items() if not k.startswith("_hw_")}

    def identity(self) -> tuple:
        """What makes two requests the same page (for loop detection)."""
        return (self.url, tuple(sorted((k, str(v)) for k, v in self.params.items())))

    def to_state(self) -> dict[str, Any]:
        return {"url": self.url, "params": dict(self.params)}

    def without(self, names: Collection[str]) -> Page:
        """This page without the parameters called ``names``, in its URL's query or its
        params (credentials, before the page is stored)."""
        if not names:
            return self
        return Page(without_query_params(self.url, names),
                    {k: v for k, v in self.params.items() if k not in names})

    def describe(self) -> str:
        """The page for a message: its URL and the arguments it sends."""
        return f"{self.url} {self.arguments}" if self.arguments else self.url

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Page:
        return cls(state["url"], dict(state.get("params") or {}))


@dataclass(frozen=True)
class PageResult:
    """What one page returned: the parsed body, the headers and how many records."""

    body: Any
    headers: Mapping[str, str]
    records: int


class Paginator:
    """One page only. Subclasses say how to find the next."""

    def first(self, page: Page) -> Page:
        """The first request, from the stream's URL and parameters."""
        return page

    def next(self, page: Page, result: PageResult) -> Page | None:
        """The request after ``page``, or ``None`` when ``result`` was the last page."""
        return None


@dataclass(frozen=True)
class PageNumber(Paginator):
    """``?page=1&per_page=100``, then 2, 3, ... until a short page or ``total_pages``."""

    page_param: str = "page"
    size_param: str | None = "per_page"
    size: int = 100
    start: int = 1
    total_pages_path: str | None = None

    def first(self, page: Page) -> Page:
        sized = {self.size_param: self.size} if self.size_param else {}
        return page.with_params(**{self.page_param: self.start}, **sized)

    def next(self, page: Page, result: PageResult) -> Page | None:
        number = int(page.params[self.page_param])
        if self.total_pages_path is not None:
            total = value_at(result.body, self.total_pages_path)
            if total is not None and number >= int(total):
                return None
        if result.records == 0 or (self.size_param and result.records < self.size):
            return None
        return page.with_params(**{self.page_param: number + 1})


@dataclass(frozen=True)
class Offset(Paginator):
    """``?offset=0&limit=100``, then 100, 200, ... until a short page or ``total``."""

    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = 100
    total_path: str | None = None

    def first(self, page: Page) -> Page:
        return page.with_params(**{self.offset_param: 0, self.limit_param: self.limit})

    def next(self, page: Page, result: PageResult) -> Page | None:
        offset = int(page.params[self.offset_param]) + result.records
        if self.total_path is not None:
            total = value_at(result.body, self.total_path)
            if total is not None and offset >= int(total):
                return None
        if result.records < self.limit:
            return None
        return page.with_params(**{self.offset_param: offset})


@dataclass(frozen=True)
class CursorInBody(Paginator):
    """A next-page token in the body (``next_cursor``), sent back as ``?cursor=...``."""

    cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"
    limit_param: str | None = None
    limit: int | None = None

    def first(self, page: Page) -> Page:
        if self.limit_param and self.limit:
            return page.with_params(**{self.limit_param: self.limit})
        return page

    def next(self, page: Page, result: PageResult) -> Page | None:
        token = value_at(result.body, self.cursor_path)
        if token in (None, ""):
            return None
        return page.with_params(**{self.cursor_param: token})


@dataclass(frozen=True)
class NextURLInBody(Paginator):
    """The next page's URL in the body (``links.next``); it carries its parameters."""

    path: str = "links.next"

    def next(self, page: Page, result: PageResult) -> Page | None:
        url = value_at(result.body, self.path)
        if not url:
            return None
        return Page(urljoin(page.url, str(url)), {})


_LINK_PART = re.compile(
    r'\s*<([^>]*)>'  # <url>
    r'|\s*;\s*([^=;,\s]+)\s*(?:=\s*("[^"]*"|[^;,]*))?'  # ; name=value, value maybe quoted
    r'|\s*,'  # between links
)


def parse_link_header(value: str | None) -> dict[str, str]:
    """An RFC 8288 ``Link`` header as ``{rel: url}`` (each rel of a link, lower case).

    Parameters may be quoted and hold commas and semicolons (``title="a, b"``).
    """
    links: dict[str, str] = {}
    url: str | None = None
    pos, text = 0, value or ""
    while pos < len(text):
        match = _LINK_PART.match(text, pos)
        if match is None or match.end() == pos:
            pos += 1  # skip what does not parse rather than loop
            continue
        pos = match.end()
        if match.group(1) is not None:
            url = match.group(1)
        elif match.group(2) and match.group(2).lower() == "rel" and url is not None:
            for name in (match.group(3) or "").strip('"').split():
                links.setdefault(name.lower(), url)
    return links


@dataclass(frozen=True)
class LinkHeader(Paginator):
    """The next page's URL in the ``Link`` header (``rel="next"``)."""

    rel: str = "next"

    def next(self, page: Page, result: PageResult) -> Page | None:
        headers = {k.lower(): v for k, v in result.headers.items()}
        url = parse_link_header(headers.get("link")).get(self.rel.lower())
        if not url:
            return None
        return Page(urljoin(page.url, url), {})


@dataclass(frozen=True)
class DateWindows(Paginator):
    """Consecutive ``[from, to)`` windows of ``step`` from ``start`` to ``end`` (default:
    now), each walked by ``inner`` (one page per window if ``None``).

    For services that answer a date range at a time. The window bounds are arguments
    of every page (``from_param``, ``to_param``), so a checkpoint names its window.
    A page that already carries ``from_param`` (an incremental window start) starts
    there.
    """

    from_param: str = "from"
    to_param: str = "to"
    step: dt.timedelta = dt.timedelta(days=30)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    inner: Paginator | None = None

    def first(self, page: Page) -> Page:
        begin = page.params.get(self.from_param) or self.start
        if begin is None:
            raise DataContractError(
                f"date windows need a start: set DateWindows(start=...) or an incremental "
                f"start for {self.from_param!r}"
            )
        # The end is fixed when the read starts ("now" by default), so the windows end.
        end = _instant(self.end) if self.end is not None else dt.datetime.now(dt.UTC)
        return self._window(page.with_params(**{_END: end.isoformat()}), _instant(begin))

    def next(self, page: Page, result: PageResult) -> Page | None:
        inner = (self.inner or Paginator()).next(page, result)
        if inner is not None:
            return inner
        upper = _instant(page.params[self.to_param])
        if upper >= _instant(page.params[_END]):
            return None
        fresh = Page(page.url, {k: v for k, v in page.params.items()
                                if k in self._base_keys(page)})
        return self._window(fresh, upper)

    def _window(self, page: Page, begin: dt.datetime) -> Page:
        upper = min(begin + self.step, _instant(page.params[_END]))
        windowed = page.with_params(**{self.from_param: begin.isoformat(),
                                       self.to_param: upper.isoformat(),
                                       _WINDOW_KEYS: ",".join(sorted(page.params))})
        return (self.inner or Paginator()).first(windowed)

    def _base_keys(self, page: Page) -> set[str]:
        keys = str(page.params.get(_WINDOW_KEYS, ""))
        return {k for k in keys.split(",") if k} | {_WINDOW_KEYS, _END}


# Bookkeeping carried in a page's parameters, never sent: the arguments a page had
# before the paginators added theirs (so the next window starts from those alone, with
# no continuation token leaking into it), and where the windows end.
_WINDOW_KEYS = "_hw_base"
_END = "_hw_end"


def _instant(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class PageLoop:
    """Refuses a page requested before in the same read (a repeated token or URL)."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self._seen: set[tuple] = set()

    def visit(self, page: Page) -> None:
        identity = page.identity()
        if identity in self._seen:
            raise DataContractError(
                f"stream {self.stream!r}: the source sent back a page already read "
                f"({page.url} {dict(page.params)}); stopping instead of looping for ever"
            )
        self._seen.add(identity)


class PageProgress:
    """Refuses a page that brings no record the read has not delivered already.

    A source whose next link or token is always new but whose records are not (a
    server that ignores the page parameter, a cursor that restarts) would be read for
    ever; :class:`PageLoop` catches only requests repeated exactly. Each page's primary
    keys are remembered as hashes: at least the most recent ``window // 2`` keys (at
    most ``window``) exactly, and every page's key set as one fingerprint, so a page all
    of whose keys are recent, or whose key set equals an earlier page's, stops the read.
    Memory stays bounded (a few megabytes) however long the read; a cycle longer than
    that of pages that differ is left to ``max_pages``. Empty pages pass (date windows
    are often empty).
    """

    def __init__(self, connector: str, stream: str, *, window: int = 100_000) -> None:
        self.connector, self.stream, self.window = connector, stream, window
        # Two generations of key hashes: the current one fills to window // 2, then
        # becomes the previous one (the one before is dropped).
        self._current: set[int] = set()
        self._previous: set[int] = set()
        self._fingerprints: set[int] = set()

    def check(self, number: int, page: Page, keys: Sequence[Hashable]) -> None:
        """Page ``number`` of this read (1-based) held records with ``keys``: remember
        them, or raise ``DataContractError`` if none is new."""
        if not keys:
            return
        try:
            hashes = frozenset(map(hash, keys))
        except TypeError:  # a key field holding a list or a mapping
            hashes = frozenset(hash(repr(key)) for key in keys)
        fingerprint = hash(hashes)
        if fingerprint in self._fingerprints or not hashes.difference(self._current,
                                                                      self._previous):
            raise DataContractError(
                f"connector {self.connector!r}, stream {self.stream!r}: page {number} of "
                f"this read ({page.describe()}) holds {len(keys)} record(s), every one read "
                "already in this read: the source's paging does not advance (a next link "
                "or token that changes while the records do not), so the read stops "
                "instead of looping; check the stream's paginator and how the source "
                "orders its pages"
            )
        self._fingerprints.add(fingerprint)
        self._current.update(hashes)
        if len(self._current) >= self.window // 2:
            self._previous, self._current = self._current, set()
