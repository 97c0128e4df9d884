"""What the demo estate's servers share: the server lifecycle (a quiet threaded WSGI
server on a background thread), a thread-safe counter, the switchboard their faults are
armed on, serving until Ctrl-C, and the time stamps of a day of activity."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any, Generic, Protocol, Self, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Fault(Protocol):
    remaining: int


F = TypeVar("F", bound=_Fault)


class Counter:
    """A count that request threads increment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def increment(self) -> None:
        with self._lock:
            self.value += 1


class FaultSwitchboard(Generic[F]):
    """Armed faults, taken in the order they were armed; safe to flip from any thread.

    Each server's ``Faults`` subclasses this with one method per kind of fault, each
    calling :meth:`arm`, and a ``take`` the server calls for every request it answers.
    A fault has ``remaining`` (requests it still spoils) and whatever it needs to decide
    which requests it matches.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[F] = []

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._armed.clear()

    def arm(self, fault: F) -> None:
        if fault.remaining < 1:
            raise ValueError(f"count must be one or more, got {fault.remaining}")
        with self._lock:
            self._armed.append(fault)

    def _take(self, matches: Callable[[F], bool]) -> F | None:
        """The earliest armed fault that ``matches`` this request, counted off."""
        with self._lock:
            for fault in self._armed:
                if matches(fault):
                    fault.remaining -= 1
                    if not fault.remaining:
                        self._armed.remove(fault)
                    return fault
        return None


class QuietHandler(WSGIRequestHandler):
    """wsgiref's request handler, without a log line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: test runs make thousands of requests."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server with a thread per request, all joined when it closes."""

    # socketserver's default backlog of 5 drops connections in a burst, and the kernel
    # retries them only a second later.
    request_queue_size = 128


class BackgroundServer:
    """Serves one WSGI app from a background thread until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.name = name  # in messages and thread names: "the CRM server is already running"
        self._httpd: _ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, app: Callable[..., Any], host: str, port: int,
              handler_class: type[WSGIRequestHandler] = QuietHandler) -> tuple[str, int]:
        """Bind ``host:port`` (0: any free port) and serve; return the bound address."""
        if self._httpd is not None:
            raise RuntimeError(f"the {self.name} server is already running")
        httpd = make_server(host, port, app, server_class=_ThreadingWSGIServer,
                            handler_class=handler_class)
        bound_host, bound_port = httpd.server_address[:2]
        self._httpd = httpd
        # A short poll interval so that stop() returns quickly.
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-{bound_port}", daemon=True)
        self._thread.start()
        return bound_host, bound_port

    def stop(self) -> None:
        """Stop serving, wait for requests in flight and close the socket; idempotent."""
        if self._httpd is None or self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = self._thread = None


class EstateServer:
    """A server of the estate: between :meth:`start` and :meth:`stop` (or as a context
    manager) it serves :meth:`_serve` from a background thread on its own port.

    Subclasses name themselves (``name``), say where their :attr:`url` points on the
    bound port (``path``), and may finish setting up once the port is known
    (:meth:`_started`).
    """

    name = "estate"
    path = ""
    handler_class: type[WSGIRequestHandler] = QuietHandler

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._url: str | None = None
        self._server = BackgroundServer(self.name)

    @property
    def url(self) -> str:
        """``http://<host>:<port><path>``; the server must be started."""
        if self._url is None:
            raise RuntimeError(f"start the {self.name} server first: its port is chosen when "
                               "it starts")
        return self._url

    def start(self) -> Self:
        """Bind the port and serve from a background thread; return self."""
        host, port = self._server.start(self._serve, *self._address,
                                        handler_class=self.handler_class)
        self._url = f"http://{host}:{port}{self.path}"
        self._started()
        return self

    def stop(self) -> None:
        """Stop serving, wait for requests in flight and close the socket; idempotent."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _started(self) -> None:
        """Called once the port is known, before the first request can need it."""

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]
               ) -> list[bytes]:
        raise NotImplementedError


def serve_until_interrupted() -> None:
    """Block the command line of a started demo server until Ctrl-C."""
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopping")


def stamps_after(rng: random.Random, latest: dt.datetime, count: int, tie_share: float
                 ) -> list[dt.datetime]:
    """``count`` stamps within the day after ``latest``, all later than it; a share
    ``tie_share`` of them repeat the stamp before (records changed in one second)."""
    stamps: list[dt.datetime] = []
    for _ in range(count):
        if stamps and rng.random() < tie_share:
            stamps.append(stamps[-1])
        else:
            stamps.append(latest + dt.timedelta(seconds=rng.randint(1, 86_400)))
    return stamps
