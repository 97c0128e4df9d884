"""Whole-exchange deadlines and size bounds: connect, headers and body, by the wall clock.

A ``requests`` timeout bounds the connect and each socket read, not the exchange: a
server that sends a byte a second never trips it, and a server that sends 50 MB is read
whole before anyone looks at the size. Two pieces close that gap:

- a :class:`Deadline`: while it is open, a watchdog thread shuts the exchange's socket
  down the moment the time passes, so a read blocked in the headers or the body returns
  at once instead of after the next socket timeout;
- :func:`read_body`: reads a streamed body (``stream=True``) piece by piece, checking
  the clock and the running byte count after each piece (and ``Content-Length`` before
  the first), so a slow body fails at the deadline and an oversized one at the limit,
  without being buffered whole.

The socket of the headers phase is known only to the connection that sends the
request: :class:`WatchedAdapter` (mounted by ``HTTPClient``) hands it to the deadline
the sending thread opened with :func:`armed`. On a session whose adapters are someone
else's, the headers phase is bounded by the socket timeouts only; the body still by the
deadline.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .._errors import DataContractError, RetriableSourceError

#: The largest response body read by default (32 MiB). Pages are usually well under a
#: megabyte; parsing a body takes several times its size in memory, so this keeps one
#: page's peak in the low hundreds of megabytes.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_CHUNK = 64 * 1024


class Deadline:
    """The wall-clock end of one HTTP exchange, ``seconds`` from now.

    Open it around the exchange (``with Deadline(5) as deadline: ...``). While it is
    open and a socket is attached (:meth:`attach`; :class:`WatchedAdapter` and
    :func:`read_body` do it), the socket is shut down when the time passes, so no read
    outlives it. ``label`` names the bound in the error (``"the operation timeout"``).
    """

    def __init__(self, seconds: float, *, label: str = "the request deadline") -> None:
        if seconds <= 0:
            raise ValueError(f"a deadline needs seconds > 0, got {seconds}")
        self.seconds, self.label = seconds, label
        self.at = time.monotonic() + seconds
        self.fired = False  # the watchdog shut the exchange down
        self.finished = False
        self._lock = threading.Lock()
        self._shutdown: Callable[[], None] | None = None

    def __enter__(self) -> Deadline:
        _WATCHDOG.watch(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    @property
    def passed(self) -> bool:
        """Whether the time is up (or the watchdog already acted)."""
        return self.fired or time.monotonic() >= self.at

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def attach(self, shutdown: Callable[[], None]) -> None:
        """Call ``shutdown`` when the deadline passes (at once if it has)."""
        with self._lock:
            if self.finished:
                return
            self._shutdown = shutdown
            if self.fired:
                _quietly(shutdown)

    def finish(self) -> None:
        """The exchange is over: the watchdog leaves its socket alone from now on."""
        with self._lock:
            self.finished = True
            self._shutdown = None

    def fire(self) -> None:
        """The time is up: shut the exchange down (the watchdog calls this)."""
        # Under the lock, so a socket is never shut after finish() handed it back.
        with self._lock:
            if self.finished:
                return
            self.fired = True
            if self._shutdown is not None:
                _quietly(self._shutdown)

    def error(self, what: str) -> RetriableSourceError:
        """The error for an exchange ``what`` that did not finish in time."""
        return RetriableSourceError(
            f"{what} gave no complete answer within {round(self.seconds, 2):g} s "
            f"({self.label})"
        )


def _quietly(shutdown: Callable[[], None]) -> None:
    with contextlib.suppress(OSError):
        shutdown()


def _shutdown_of(sock: socket.socket) -> Callable[[], None]:
    # The plain socket's shutdown, also for TLS sockets: SSLSocket.shutdown would drop
    # its SSL object under a reader in another thread; this makes that reader see EOF.
    return lambda: socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that fires open deadlines when they pass (a heap by time)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also in a forked child: the parent's thread is gone and its lock may be held.
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        with self._wake:
            if len(self._heap) > 4096:  # finished deadlines wait for their time: drop them
                self._heap = [entry for entry in self._heap if not entry[2].finished]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="headwater-deadlines",
                                                daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._wake.notify()

    def _due(self) -> list[Deadline]:
        now, due = time.monotonic(), []
        while self._heap and (self._heap[0][2].finished or self._heap[0][0] <= now):
            deadline = heapq.heappop(self._heap)[2]
            if not deadline.finished:
                due.append(deadline)
        return due

    def _run(self) -> None:
        while True:
            with self._wake:
                due = self._due()
                if not due:
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wake.wait(wait)
                    continue
            for deadline in due:
                deadline.fire()


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG._reset)
_current = threading.local()


@contextlib.contextmanager
def armed(deadline: Deadline) -> Iterator[Deadline]:
    """Requests sent from this thread inside the block belong to ``deadline``: a
    :class:`WatchedAdapter` attaches their sockets to it as soon as the request is sent."""
    previous = getattr(_current, "deadline", None)
    _current.deadline = deadline
    try:
        yield deadline
    finally:
        _current.deadline = previous


def _attach_current(connection: HTTPConnection) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None and connection.sock is not None:
        deadline.attach(_shutdown_of(connection.sock))


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self) -> Any:  # type: ignore[override]
        _attach_current(self)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> Any:  # type: ignore[override]
        _attach_current(self)
        return super().getresponse()


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """``requests``' adapter whose connections hand their socket to the deadline the
    sending thread opened (:func:`armed`), so the headers phase is under it too."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool,
                                                   "https": _WatchedHTTPSPool}


def _what(response: requests.Response) -> str:
    from ._client import describe

    method = response.request.method if response.request is not None else "GET"
    return describe(method or "GET", response.url or "")


def too_large(what: str, max_bytes: int, declared: int | None = None) -> DataContractError:
    """The error for a response past ``max_bytes``."""
    said = (f"declared {declared:,} bytes, more than" if declared is not None
            else "sent more than")
    return DataContractError(
        f"{what} {said} the max_response_bytes limit of {max_bytes:,}; it was dropped "
        "at the limit, not read whole: raise max_response_bytes where responses this "
        "large are expected, or ask the source for smaller pages"
    )


def read_body(response: requests.Response, *, deadline: Deadline | None = None,
              max_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES) -> bytes:
    """Read the body of a response sent with ``stream=True`` within ``deadline`` and
    ``max_bytes``; the body also becomes ``response.content`` (``.json()``, ``.text``).

    A ``Content-Length`` over ``max_bytes`` fails before the first byte, a body that
    grows past it fails at the limit (``DataContractError``: retrying would fetch it
    again); a body still arriving when the deadline passes fails then
    (``RetriableSourceError``), as does a connection that breaks off. Counting is of
    decoded bytes, so a small compressed body that inflates is bounded too. On failure
    the connection is closed, never returned to the pool half read.
    """
    if response._content_consumed:  # read already (a redirect, or a caller before us)
        return response.content
    declared = response.headers.get("Content-Length", "")
    if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise too_large(_what(response), max_bytes, int(declared))
    raw = response.raw
    connection = getattr(raw, "connection", None)
    if deadline is not None and getattr(connection, "sock", None) is not None:
        deadline.attach(_shutdown_of(connection.sock))
    parts: list[bytes] = []
    size, done = 0, False
    try:
        while True:
            piece = raw.read1(_CHUNK, decode_content=True)
            if not piece:
                break
            size += len(piece)
            if max_bytes is not None and size > max_bytes:
                raise too_large(_what(response), max_bytes)
            parts.append(piece)
            if deadline is not None and deadline.passed:
                raise deadline.error(_what(response))
        if deadline is not None and deadline.fired:  # the watchdog cut the body short
            raise deadline.error(_what(response))
        done = True
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if deadline is not None and deadline.passed:
            raise deadline.error(_what(response)) from None
        raise RetriableSourceError(
            f"{_what(response)} broke off mid-answer ({type(exc).__name__})"
        ) from None
    finally:
        if not done:
            response.close()
    content = b"".join(parts)
    response._content = content
    response._content_consumed = True
    return content
