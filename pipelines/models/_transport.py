"""One HTTP request under a wall deadline, from connect to the last byte of the body.

A ``requests`` timeout bounds the connect and each socket read, not the request: an
endpoint that drips a byte every 0.15 s never times out. :func:`post_within` sends the
request under a :class:`~connectors.http.Deadline` whose watchdog shuts the socket down
if the status line and headers are still arriving when the time is up (the session's
adapters must be ``WatchedAdapter`` s, as :class:`~connectors.http.HTTPClient` mounts
them); it then streams the body and, before every read, sets the socket's timeout to
what is left of the deadline (a monotonic clock), so no read waits past it. A passed
deadline or a set ``abort`` closes the connection, which also tells the endpoint to stop
(inference servers abort a generation whose client went away). A call that gives up
therefore holds no socket and no thread afterwards: requests in flight never exceed the
threads sending them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from connectors.http import Deadline, armed, describe

from ._errors import ProviderError

MAX_BODY_BYTES = 8 * 1024 * 1024
_CHUNK = 64 * 1024
_NETWORK_MARKERS = ("Connection refused", "Connection reset", "Connection aborted",
                    "Remote end closed connection", "Name or service not known",
                    "Max retries exceeded")


@dataclass(frozen=True)
class Reply:
    """A whole HTTP response: status, headers, body, and the request's id (the
    endpoint's ``x-request-id`` if it sent one, else the id headwater sent)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    request_id: str


def post_within(session: requests.Session, url: str, body: bytes, headers: Mapping[str, str],
                *, deadline: float, connect_timeout: float,
                proxies: Mapping[str, str] | None = None,
                abort: threading.Event | None = None) -> Reply:
    """POST ``body`` (JSON) to ``url`` and read the whole answer by ``deadline``
    (``time.monotonic()`` seconds), or raise a retriable :class:`ProviderError`
    (``timeout`` or ``connection``)."""
    client_id = f"hw-{uuid.uuid4().hex}"
    started = time.monotonic()
    left = deadline - started
    if left <= 0:
        raise _timed_out(url, 0.0, 0)
    headers_by = Deadline(left, label="the model call deadline")
    try:
        with headers_by, armed(headers_by):
            response = session.post(
                url, data=body, stream=True, proxies=dict(proxies or {}),
                headers={**headers, "Content-Type": "application/json",
                         "X-Client-Request-Id": client_id},
                timeout=(min(connect_timeout, left), left))
    except requests.Timeout:
        raise _timed_out(url, time.monotonic() - started, 0) from None
    except requests.RequestException as exc:
        if headers_by.fired:  # the watchdog cut a status line or headers still arriving
            raise _timed_out(url, time.monotonic() - started, 0) from None
        raise _network(url, exc, None) from None
    if headers_by.fired:  # the headers came in just as it cut the socket
        response.close()
        raise _timed_out(url, time.monotonic() - started, 0)
    request_id = response.headers.get("x-request-id") or client_id
    content = _read_body(response, url, deadline, started, abort, request_id)
    return Reply(response.status_code, response.reason or "", response.headers, content,
                 request_id)


def _read_body(response: requests.Response, url: str, deadline: float, started: float,
               abort: threading.Event | None, request_id: str) -> bytes:
    """The body, read a chunk at a time, no read waiting past ``deadline``."""
    raw = response.raw
    sock = getattr(raw.connection, "sock", None)
    chunks: list[bytes] = []
    size, whole = 0, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (abort is not None and abort.is_set()):
                break
            if sock is not None:
                sock.settimeout(left)
            chunk = raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                whole = True
                break
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ProviderError(f"{describe('POST', url)}: the answer passed "
                                    f"{MAX_BODY_BYTES:,} bytes; it was cut off",
                                    reason="answer too large", status=response.status_code,
                                    request_id=request_id)
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            raise _timed_out(url, time.monotonic() - started, size, request_id) from None
        raise _network(url, exc, request_id) from None
    finally:
        if not whole:
            response.close()  # closes the socket: the endpoint sees its client leave
    if abort is not None and abort.is_set() and not whole:
        raise ProviderError(f"{describe('POST', url)}: the run stopped while the answer "
                            "arrived", reason="aborted", request_id=request_id)
    if not whole:
        raise _timed_out(url, time.monotonic() - started, size, request_id)
    return b"".join(chunks)


def _timed_out(url: str, seconds: float, size: int, request_id: str | None = None
               ) -> ProviderError:
    return ProviderError(f"{describe('POST', url)}: no whole answer within the deadline "
                         f"({seconds:.1f} s, {size:,} bytes received)", reason="timeout",
                         request_id=request_id, retriable=True)


def _network(url: str, exc: Any, request_id: str | None) -> ProviderError:
    text = str(exc.args[0]) if getattr(exc, "args", None) else type(exc).__name__
    marker = next((m for m in _NETWORK_MARKERS if m in text), type(exc).__name__)
    return ProviderError(f"{describe('POST', url)}: {type(exc).__name__} ({marker})",
                         reason="connection", request_id=request_id, retriable=True)
