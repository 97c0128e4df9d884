"""Real HTTP servers on 127.0.0.1 (port 0) that misbehave on purpose: they drip their
answers a byte at a time, send more than anyone should read, loop their pagination, or
echo credentials. Each answers with a function of the request, counts requests and the
body bytes it managed to send, and ends its slow answers when stopped."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    """What to send: a status, headers, and the body as pieces, each sent after
    ``interval`` seconds (a slow drip), or ``head_interval`` between the bytes of the
    status line and headers."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Iterator[bytes] | bytes = b""
    interval: float = 0.0
    head_interval: float = 0.0
    length: int | None = None  # Content-Length to declare; None: the body's, if known


class HostileServer:
    """Answers every request with ``respond(seen) -> Answer``; use as a context manager."""

    def __init__(self, respond: Callable[[Seen], Answer]) -> None:
        self.respond = respond
        self.seen: list[Seen] = []
        self.body_bytes_sent = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, parts.path, parse_qs(parts.query),
                            dict(self.headers), self.rfile.read(length) if length else b"")
                with server._lock:
                    server.seen.append(seen)
                try:
                    server._send(self, server.respond(seen))
                except (BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True

            do_GET = do_POST = _answer

            def log_message(self, format, *args):  # keep the test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,),
                                        daemon=True)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.seen)

    def _send(self, handler: http.server.BaseHTTPRequestHandler, answer: Answer) -> None:
        body = answer.body
        length = answer.length if answer.length is not None else (
            len(body) if isinstance(body, bytes) else None)
        head = [f"HTTP/1.1 {answer.status} {'OK' if answer.status < 400 else 'Error'}"]
        head += [f"{name}: {value}" for name, value in answer.headers.items()]
        if length is not None:
            head.append(f"Content-Length: {length}")
        else:
            head.append("Connection: close")
            handler.close_connection = True
        raw_head = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if answer.head_interval:
            for i in range(len(raw_head)):
                if self.stopping.wait(answer.head_interval):
                    return
                handler.wfile.write(raw_head[i:i + 1])
        else:
            handler.wfile.write(raw_head)
        for piece in ([body] if isinstance(body, bytes) else body):
            if answer.interval and self.stopping.wait(answer.interval):
                return
            handler.wfile.write(piece)
            with self._lock:
                self.body_bytes_sent += len(piece)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def drip(data: bytes) -> Iterator[bytes]:
    """``data`` a byte at a time (with ``Answer.interval`` between bytes)."""
    for i in range(len(data)):
        yield data[i:i + 1]


def endless(piece: bytes, total: int) -> Iterator[bytes]:
    """``piece`` again and again, ``total`` bytes in all, made as it is sent."""
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


def measure_peak_rss_growth(action: Callable[[], object]) -> tuple[int, Exception | None]:
    """Bytes the process's peak resident set grew by while ``action`` ran, and what it
    raised. Linux: the peak is reset first (``/proc/self/clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = _status_kb("VmRSS")
    failure: Exception | None = None
    try:
        action()
    except Exception as exc:  # handed back to the test to check
        failure = exc
    return (_status_kb("VmHWM") - before) * 1024, failure


def _status_kb(name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise LookupError(name)


def wall(action: Callable[[], object]) -> tuple[float, Exception | None]:
    """Seconds ``action`` took, and what it raised."""
    started = time.monotonic()
    try:
        action()
    except Exception as exc:  # handed back to the test to check
        return time.monotonic() - started, exc
    return time.monotonic() - started, None
