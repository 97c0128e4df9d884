"""One HTTP policy for every web source (REST, SOAP): timeouts, retries, auth, redaction.

``HTTPClient.request`` is the only way a connector talks HTTP. Every request has a
timeout; 408, 429, 5xx and connection failures are retried with exponential backoff and
full jitter, a ``Retry-After`` (seconds or an HTTP date) winning over the computed delay,
within ``max_attempts`` and a total time budget; a 401 renews the credentials once and
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

from .._errors import AuthenticationError, ConfigurationError, RetriableSourceError
from .._redaction import redact
from .._retry import Retrier, RetryPolicy
from ._auth import Auth
from ._ratelimit import RateLimit

log = logging.getLogger("headwater.connectors.http")

RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = (10.0, 60.0)  # connect, read (seconds)


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

    ``session`` is exposed for libraries that take one (zeep's transport), so SOAP and
    REST share connection pooling and settings.
    """

    def __init__(self, *, auth: Auth | None = None, retry: RetryPolicy | Retrier | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 max_elapsed: float = 300.0, rate_limit: RateLimit | None = None,
                 headers: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.auth = auth or Auth()
        self.retrier = retry if isinstance(retry, Retrier) else Retrier(retry or RetryPolicy())
        self.timeout = timeout
        self.max_elapsed = max_elapsed
        self.rate_limit = rate_limit
        self._clock = clock
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "headwater", **(headers or {})})
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
                headers: Mapping[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """Send one request under the policy; return a 2xx/3xx response or raise."""
        started = self._clock()
        attempt, renewed = 0, False
        while True:
            attempt += 1
            try:
                response, used = self._send(method, url, params, headers, kwargs)
            except requests.RequestException as exc:
                what = describe(method, url)  # named only on failure: redaction costs
                error = RetriableSourceError(f"{what}: {type(exc).__name__} ({_reason(exc)})")
            else:
                if response.status_code == 401 and not renewed and self.auth.renew(used):
                    renewed = True
                    attempt -= 1  # a replay with fresh credentials is not a retry
                    response.close()
                    continue
                if response.status_code < 400:
                    return response
                what = describe(method, url)
                error = self._failure(response, what)
            self._wait_or_raise(attempt, error, what, started)

    def _send(self, method: str, url: str, params: Mapping[str, Any] | None,
              headers: Mapping[str, str] | None, kwargs: dict[str, Any]
              ) -> tuple[requests.Response, Any]:
        if self.rate_limit is not None:
            self.stats["rate_limited_s"] += self.rate_limit.acquire()
        all_headers, all_params = dict(headers or {}), dict(params or {})
        used = self.auth.apply(all_headers, all_params)
        self.stats["requests"] += 1
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("proxies", self._proxies_for(url))
        response = self.session.request(method, url, params=all_params, headers=all_headers,
                                        **kwargs)
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

    def _wait_or_raise(self, attempt: int, error: Exception, what: str, started: float) -> None:
        """After failed ``attempt``: sleep before the next one, or raise if the error is
        fatal, the attempts are used up, or the wait would pass the time budget."""
        if not isinstance(error, RetriableSourceError):
            raise error
        policy = self.retrier.policy
        if not policy.should_retry(attempt):
            raise RetriableSourceError(
                f"{what} failed after {attempt} attempt(s): {error.message}",
                retry_after=error.retry_after,
            ) from error
        delay = policy.delay(attempt, error.retry_after, self.retrier.rng)
        elapsed = self._clock() - started
        if elapsed + delay > self.max_elapsed:
            raise RetriableSourceError(
                f"{what} failed for {elapsed:.0f} s; waiting {delay:.0f} s more would pass "
                f"the {self.max_elapsed:g} s budget: {error.message}",
                retry_after=error.retry_after,
            ) from error
        self.stats["retries"] += 1
        log.info("%s: attempt %d failed (%s); retrying in %.1f s", what, attempt,
                 error.message, delay)
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


def _reason(exc: requests.RequestException) -> str:
    """A short reason for a network failure, without the URL (it may hold secrets)."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    for marker in ("Connection refused", "Read timed out", "Connection aborted",
                   "Remote end closed connection", "Connection reset", "timed out",
                   "Max retries exceeded", "Name or service not known"):
        if marker in text:
            return marker
    return redact(text.split(":")[0])[:120]
