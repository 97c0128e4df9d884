"""Authentication for HTTP sources: OAuth2 client credentials, API key, basic, bearer.

An auth object adds credentials to each request (:meth:`Auth.apply`) and may renew them
once when the server answers 401 (:meth:`Auth.renew`). Every secret is registered for
redaction when the object is built, so no log line or error shows it; addresses such as
``token_url`` are not secrets and are never registered (a URL registered whole would turn
every message about it into ``***``). Credentials sent as query parameters are named in
:attr:`Auth.query_params`, so a URL that echoes them (a server's next-page link) can be
stored without them (:meth:`Auth.without_credentials`) and have them applied again.

The OAuth2 token exchange runs under the same HTTP policy as the requests it serves
(retries with backoff, a whole-request deadline, a time budget).
"""

from __future__ import annotations

import base64
import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests

from .._errors import (
    AuthenticationError,
    ConfigurationError,
    HeadwaterError,
    RetriableSourceError,
)
from .._redaction import register_secret, without_query_params
from .._retry import Retrier, RetryPolicy

if TYPE_CHECKING:
    from ._client import HTTPClient


class Auth:
    """No credentials. Subclasses add theirs in :meth:`apply`."""

    #: Query parameters that carry credentials: never stored, sent once per request.
    query_params: frozenset[str] = frozenset()

    def without_credentials(self, url: str) -> str:
        """``url`` without this auth's credential query parameters (a next-page link
        that echoes an API key, say); :meth:`apply` adds them back when it is sent."""
        return without_query_params(url, self.query_params)

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> Any:
        """Add credentials to one request; return a token for :meth:`renew`."""
        return None

    def renew(self, used: Any) -> bool:
        """The server rejected credentials ``used``: renew them; False if that cannot help."""
        return False


class BearerToken(Auth):
    """A fixed bearer token (``Authorization: Bearer ...``)."""

    def __init__(self, token: str) -> None:
        register_secret(token)
        self._token = token

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> Any:
        headers["Authorization"] = f"Bearer {self._token}"


class BasicAuth(Auth):
    """HTTP basic authentication."""

    def __init__(self, username: str, password: str) -> None:
        register_secret(password)
        encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
        register_secret(encoded)
        self._header = f"Basic {encoded}"

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> Any:
        headers["Authorization"] = self._header


class APIKey(Auth):
    """An API key in a header (default ``X-API-Key``), or in ``query_param`` if given."""

    def __init__(self, key: str, *, header: str = "X-API-Key",
                 query_param: str | None = None) -> None:
        register_secret(key)
        self._key, self._header, self._param = key, header, query_param
        self.query_params = frozenset({query_param}) if query_param else frozenset()

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> Any:
        if self._param:
            params[self._param] = self._key
        else:
            headers[self._header] = self._key


class OAuth2ClientCredentials(Auth):
    """OAuth2 client credentials (RFC 6749 4.4) through authlib.

    ``method`` is how the client authenticates at the token endpoint:
    ``client_secret_basic`` (default), ``client_secret_post``, or ``private_key_jwt``
    (RFC 7523, with ``private_key`` a PEM RSA key). The token is fetched on first use and
    renewed ``leeway`` seconds before it expires (clock skew, slow requests), or once
    when the server rejects it. Requests that find it expired at the same time wait for
    one renewal: exactly one token request.

    Token requests go through an :class:`~connectors.http.HTTPClient`: each attempt has
    ``timeout`` seconds from connect to last byte; 408, 429, 5xx, dropped connections and
    passed deadlines are retried under ``retry`` within ``max_elapsed`` seconds.
    Failures say whether the endpoint could not be reached or what it answered.
    """

    METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")

    def __init__(self, token_url: str, client_id: str, client_secret: str | None = None, *,
                 private_key: bytes | str | None = None, method: str = "client_secret_basic",
                 scope: str | None = None, leeway: float = 30.0, timeout: float = 10.0,
                 retry: RetryPolicy | Retrier | None = None, max_elapsed: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        if method not in self.METHODS:
            raise ConfigurationError(
                f"unknown OAuth2 client authentication {method!r}; use one of {self.METHODS}"
            )
        if method == "private_key_jwt" and not private_key:
            raise ConfigurationError("private_key_jwt needs private_key (a PEM RSA key)")
        if method != "private_key_jwt" and not client_secret:
            raise ConfigurationError(f"{method} needs client_secret")
        register_secret(client_secret)
        self.token_url, self.client_id, self.method = token_url, client_id, method
        self.scope, self.leeway, self.timeout = scope, leeway, timeout
        self._secret, self._private_key = client_secret, private_key
        self._clock = clock
        self._lock = threading.Lock()
        self._token: dict[str, Any] | None = None
        self._expires_at = 0.0
        self._retry, self._max_elapsed = retry, max_elapsed
        self._http: HTTPClient | None = None
        #: Tokens asked for (one per renewal, however many attempts each took).
        self.token_requests = 0

    @property
    def http(self) -> HTTPClient:
        """The client the token requests go through (its ``stats`` count the attempts)."""
        if self._http is None:
            from ._client import HTTPClient

            self._http = HTTPClient(retry=self._retry, timeout=self.timeout,
                                    deadline=self.timeout, max_elapsed=self._max_elapsed,
                                    max_response_bytes=1024 * 1024)
        return self._http

    def _session(self) -> Any:
        session_class = _policy_session_class()
        if self.method == "private_key_jwt":
            from authlib.oauth2.rfc7523 import PrivateKeyJWT

            session = session_class(self.client_id, self._private_key,
                                    token_endpoint_auth_method=PrivateKeyJWT(self.token_url),
                                    scope=self.scope)
        else:
            session = session_class(self.client_id, self._secret,
                                    token_endpoint_auth_method=self.method, scope=self.scope)
        session.policy = self.http
        return session

    def _fetch(self) -> None:
        from authlib.integrations.base_client.errors import OAuthError

        self.token_requests += 1
        where = f"the token endpoint {self.token_url}"
        try:
            with self._session() as session:
                token = session.fetch_token(self.token_url, grant_type="client_credentials",
                                            timeout=self.timeout)
        except OAuthError as exc:
            raise AuthenticationError(
                f"{where} refused client {self.client_id!r} ({exc.error}): check the client "
                "id and secret"
            ) from None
        except RetriableSourceError as exc:
            raise RetriableSourceError(
                f"no token for client {self.client_id!r}: {exc.message}",
                retry_after=exc.retry_after,
            ) from None
        except HeadwaterError as exc:
            raise type(exc)(f"no token for client {self.client_id!r}: {exc.message}") from None
        except requests.HTTPError as exc:  # an error status without an OAuth2 error body
            status = exc.response.status_code if exc.response is not None else 0
            kind = AuthenticationError if status in (401, 403) else ConfigurationError
            raise kind(f"{where} answered {status} without an OAuth2 error for client "
                       f"{self.client_id!r}: check token_url and the client") from None
        except ValueError:  # 2xx, but not a JSON object
            raise ConfigurationError(
                f"{where} answered without a JSON token: check token_url"
            ) from None
        access = token.get("access_token")
        if not access:
            raise AuthenticationError(f"{where} returned no access_token")
        register_secret(access)
        self._token = dict(token)
        expires_in = token.get("expires_in")
        self._expires_at = (self._clock() + float(expires_in)) if expires_in else float("inf")

    def _current(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self.leeway:
                self._fetch()
            assert self._token is not None
            return self._token["access_token"]

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> Any:
        token = self._current()
        headers["Authorization"] = f"Bearer {token}"
        return token

    def renew(self, used: Any) -> bool:
        with self._lock:
            # Another request may have renewed it already: then just replay.
            if self._token is not None and self._token["access_token"] == used:
                self._fetch()
        return True


def _oauth_answer(response: requests.Response) -> bool:
    """Token-endpoint answers authlib reads itself: RFC 6749 5.2 errors (400, 401)."""
    return response.status_code in (400, 401)


@functools.cache
def _policy_session_class() -> type:
    """authlib's requests session, its HTTP sent through an :class:`HTTPClient`."""
    from authlib.integrations.requests_client import OAuth2Session

    class PolicySession(OAuth2Session):  # type: ignore[misc]
        policy: Any = None

        def request(self, method: str, url: str, withhold_token: bool = False,
                    auth: Any = None, **kwargs: Any) -> requests.Response:
            return self.policy.request(method, url, auth=auth, accept=_oauth_answer,
                                       deadline_label="the token request deadline", **kwargs)

    return PolicySession
