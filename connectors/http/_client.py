"""One HTTP policy for every web source (REST, SOAP, token endpoints): deadlines, retries,
auth, size bounds, redaction.

``HTTPClient.request`` is the only way a connector talks HTTP. Every attempt has a wall
deadline covering connect, headers and body (see :mod:`._deadline`: a socket timeout
alone lets a slow-drip server hold a read for ever), and its body is read under a size
bound; 408, 429, 5xx, connection failures and passed deadlines are retried with
exponential backoff and full jitter, a ``Retry-After`` (seconds or an HTTP date) winning
over the computed delay, within ``max_attempts`` and ``max_elapsed``, which bounds the
whole retried request (attempts and waits); a 401 renews the credentials once and
replays; any other 4xx fails at once with the status, the method and the URL (redacted),
never the body.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3

from .._errors import AuthenticationError, ConfigurationError, RetriableSourceError
from .._redaction import RedactingFilter, redact
from .._retry import Retrier, RetryPolicy, report_retry
from ._auth import Auth
from ._deadline import DEFAULT_MAX_RESPONSE_BYTES, Deadline, WatchedAdapter, armed, read_body
from ._ratelimit import RateLimit

log = logging.getLogger("headwater.connectors.http")
# urllib3 logs every request line at DEBUG, query string (an API key) included; authlib
# its token exchanges.
for _name in ("urllib3.connectionpool", "authlib"):
    logging.getLogger(_name).addFilter(RedactingFilter())

RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
#: Seconds one attempt may take, connect to last byte, unless a request says otherwise.
DEFAULT_DEADLINE = 120.0
_UNSET: Any = object()


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """A ``Retry-After`` header as seconds: delta-seconds or an HTTP date; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def describe(method: str, url: str) -> str:
    """``GET https://host/path`` with the query string dropped and secrets masked."""
    parts = urlsplit(url)
    return redact(f"{method} {urlunsplit((parts.scheme, parts.netloc, parts.path, '', ''))}")


class HTTPClient:
    """A ``requests`` session under headwater's HTTP policy (see the module docstring).

    ``deadline`` is the seconds one attempt may take (connect, headers and body);
    ``max_elapsed`` bounds the whole request, retries and waits included (the last
    attempt gets what is left); ``timeout`` (connect, read) bounds each socket
    operation inside that. ``max_response_bytes`` bounds a body (``None``: no bound).
    ``clock`` measures ``max_elapsed`` (a seam for tests). ``session`` is exposed for
    hooks and for libraries that take one.
    """

    def __init__(self, *, auth: Auth | None = None, retry: RetryPolicy | Retrier | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 deadline: float = DEFAULT_DEADLINE, max_elapsed: float = 300.0,
                 max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
                 rate_limit: RateLimit | None = None,
                 headers: Mapping[str, str] | None = None, pool_size: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if deadline <= 0 or max_elapsed <= 0:
            raise ConfigurationError("deadline and max_elapsed must be more than 0 seconds")
        if max_response_bytes is not None and max_response_bytes < 1:
            raise ConfigurationError("max_response_bytes must be at least 1 (or None)")
        self.auth = auth or Auth()
        self.retrier = retry if isinstance(retry, Retrier) else Retrier(retry or RetryPolicy())
        self.timeout = timeout
        self.deadline = deadline
        self.max_elapsed = max_elapsed
        self.max_response_bytes = max_response_bytes
        self.rate_limit = rate_limit
        self.clock = clock
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "headwater", **(headers or {})})
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, WatchedAdapter(pool_connections=pool_size,
                                                      pool_maxsize=pool_size))
        # The environment (proxies, no_proxy, CA bundle) is read once per host rather
        # than on every request, which costs requests about half a millisecond each.
        self.session.trust_env = False
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self.session.verify = bundle
        self._proxies: dict[str, dict[str, str]] = {}
        #: Requests sent, retries made and seconds waited for the rate limit.
        self.stats = {"requests": 0, "retries": 0, "rate_limited_s": 0.0}

    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, deadline: float | None = None,
                deadline_label: str = "the request deadline", max_bytes: int | None = _UNSET,
                accept: Callable[[requests.Response], bool] | None = None,
                **kwargs: Any) -> requests.Response:
        """Send one request under the policy; return a 2xx/3xx response with its body
        read (``response.content``), or raise.

        ``deadline`` (seconds per attempt) and ``max_bytes`` override the client's for
        this request; ``deadline_label`` names the bound in messages. ``accept`` takes
        responses the caller handles itself whatever their status (a SOAP fault, an
        OAuth2 error): it sees the status and headers, and the body of a response it
        takes is read like any other. Other keyword arguments go to ``requests``.
        """
        started = self.clock()
        ends = time.monotonic() + self.max_elapsed  # the real-time end of the budget
        per_attempt = self.deadline if deadline is None else deadline
        cap = self.max_response_bytes if max_bytes is _UNSET else max_bytes
        attempt, renewed = 0, False
        while True:
            attempt += 1
            try:
                response, used = self._attempt(method, url, params, headers, kwargs, cap,
                                               accept, per_attempt, deadline_label, ends)
            except RetriableSourceError as exc:
                error: Exception = exc
            else:
                if accept is not None and accept(response):
                    return response
                if response.status_code == 401 and not renewed and self.auth.renew(used):
                    renewed = True
                    attempt -= 1  # a replay with fresh credentials is not a retry
                    response.close()
                    continue
                if response.status_code < 400:
                    return response
                error = self._failure(response, describe(method, url))
            self.wait_or_raise(attempt, error, describe(method, url), started)

    def _attempt(self, method: str, url: str, params: Mapping[str, Any] | None,
                 headers: Mapping[str, str] | None, kwargs: dict[str, Any],
                 max_bytes: int | None, accept: Callable[[requests.Response], bool] | None,
                 seconds: float, label: str, ends: float) -> tuple[requests.Response, Any]:
        """One exchange under its deadline: the response (its body read unless its
        status makes it a failure) and the credentials used."""
        if self.rate_limit is not None:
            self.stats["rate_limited_s"] += self.rate_limit.acquire()
        all_headers, all_params = dict(headers or {}), dict(params or {})
        used = self.auth.apply(all_headers, all_params)
        if self.auth.query_params:  # a next-page URL may echo them: send them once
            url = self.auth.without_credentials(url)
        left = ends - time.monotonic()
        if left < seconds:
            seconds = max(left, 0.001)
            label = f"what was left of max_elapsed {self.max_elapsed:g} s"
        self.stats["requests"] += 1
        options = {**kwargs, "stream": True,
                   "timeout": _capped(kwargs.get("timeout", self.timeout), seconds)}
        options.setdefault("proxies", self._proxies_for(url))
        with Deadline(seconds, label=label) as deadline:
            try:
                with armed(deadline):
                    response = self.session.request(method, url, params=all_params,
                                                    headers=all_headers, **options)
                if response.status_code < 400 or (accept is not None and accept(response)):
                    read_body(response, deadline=deadline, max_bytes=max_bytes)
            except requests.RequestException as exc:
                what = describe(method, url)  # named only on failure: redaction costs
                if deadline.passed:
                    raise deadline.error(what) from None
                raise _transport_error(exc, what) from None
        return response, used

    def _proxies_for(self, url: str) -> dict[str, str]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._proxies:
            self._proxies[origin] = requests.utils.get_environ_proxies(origin)
        return self._proxies[origin]

    @staticmethod
    def _failure(response: requests.Response, what: str) -> Exception:
        status = response.status_code
        response.close()
        if status in RETRIABLE_STATUS:
            return RetriableSourceError(
                f"{what} answered {status} {response.reason}",
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status in (401, 403):
            return AuthenticationError(
                f"{what} answered {status} {response.reason}: the credentials were refused "
                "or lack the permission; check them (they are not shown)"
            )
        return ConfigurationError(f"{what} answered {status} {response.reason}")

    def wait_or_raise(self, attempt: int, error: Exception, what: str, started: float) -> None:
        """After failed ``attempt`` of a request begun at ``started`` (a :attr:`clock`
        reading): sleep before the next one, or raise if the error is fatal, the
        attempts are used up, or the wait would pass ``max_elapsed``.

        Callers that retry on their own account (a malformed body, a SOAP server fault)
        use this too, so one budget bounds every retry of a request."""
        if not isinstance(error, RetriableSourceError):
            raise error
        policy = self.retrier.policy
        if not policy.should_retry(attempt):
            raise RetriableSourceError(
                f"{what} failed after {attempt} attempt(s): {error.message}",
                retry_after=error.retry_after,
            ) from error
        delay = policy.delay(attempt, error.retry_after, self.retrier.rng)
        elapsed = self.clock() - started
        if elapsed + delay >= self.max_elapsed:
            raise RetriableSourceError(
                f"{what} failed for {elapsed:.0f} s; waiting {delay:.0f} s more would pass "
                f"the {self.max_elapsed:g} s budget: {error.message}",
                retry_after=error.retry_after,
            ) from error
        self.stats["retries"] += 1
        report_retry(what, attempt, error, delay)
        if self.retrier.on_retry is not None:
            self.retrier.on_retry(attempt, error, delay)
        self.retrier.sleep(delay)

    def get_json(self, url: str, **kwargs: Any) -> tuple[Any, requests.Response]:
        """GET ``url`` and parse its JSON body; malformed JSON is a retriable failure."""
        response = self.request("GET", url, **kwargs)
        try:
            return response.json(), response
        except ValueError as exc:
            raise RetriableSourceError(
                f"{describe('GET', response.url)} returned malformed JSON ({exc})"
            ) from None

    def close(self) -> None:
        self.session.close()


def _capped(timeout: Any, seconds: float) -> Any:
    """Socket timeouts no longer than the attempt's deadline."""
    if timeout is None:
        return (seconds, seconds)
    if isinstance(timeout, tuple):
        return tuple(seconds if t is None else min(t, seconds) for t in timeout)
    return min(timeout, seconds)


def _unreachable(exc: requests.RequestException) -> bool:
    """Whether the request failed before any connection was made (refused, unresolved,
    connect timeout), as opposed to a connection that broke or fell silent."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionRefusedError)


def _transport_error(exc: requests.RequestException, what: str) -> RetriableSourceError:
    how = "could not be reached" if _unreachable(exc) else "gave no complete answer"
    return RetriableSourceError(f"{what} {how}: {type(exc).__name__} ({_reason(exc)})")


def _reason(exc: requests.RequestException) -> str:
    """A short reason for a network failure, without the URL (it may hold secrets)."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    for marker in ("Connection refused", "Read timed out", "Connection aborted",
                   "Remote end closed connection", "Connection reset", "timed out",
                   "Max retries exceeded", "Name or service not known"):
        if marker in text:
            return marker
    return redact(text.split(":")[0])[:120]
