"""Authentication for HTTP sources: OAuth2 client credentials, API key, basic, bearer.

An auth object adds credentials to each request (:meth:`Auth.apply`) and may renew them
once when the server answers 401 (:meth:`Auth.renew`). Every secret is registered for
redaction when the object is built, so no log line or error shows it.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from .._errors import AuthenticationError, ConfigurationError, RetriableSourceError
from .._redaction import redact, register_secret


class Auth:
    """No credentials. Subclasses add theirs in :meth:`apply`."""

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
    """

    METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")

    def __init__(self, token_url: str, client_id: str, client_secret: str | None = None, *,
                 private_key: bytes | str | None = None, method: str = "client_secret_basic",
                 scope: str | None = None, leeway: float = 30.0, timeout: float = 10.0,
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
        #: Token requests made (for observability and tests).
        self.token_requests = 0

    def _session(self) -> Any:
        from authlib.integrations.requests_client import OAuth2Session

        if self.method == "private_key_jwt":
            from authlib.oauth2.rfc7523 import PrivateKeyJWT

            return OAuth2Session(self.client_id, self._private_key,
                                 token_endpoint_auth_method=PrivateKeyJWT(self.token_url),
                                 scope=self.scope)
        return OAuth2Session(self.client_id, self._secret,
                             token_endpoint_auth_method=self.method, scope=self.scope)

    def _fetch(self) -> None:
        from authlib.integrations.base_client.errors import OAuthError

        self.token_requests += 1
        try:
            with self._session() as session:
                token = session.fetch_token(self.token_url, grant_type="client_credentials",
                                            timeout=self.timeout)
        except OAuthError as exc:
            raise AuthenticationError(
                f"the token endpoint {redact(self.token_url)} refused client "
                f"{self.client_id!r} ({exc.error}): check the client id and secret"
            ) from None
        except requests.RequestException as exc:
            raise RetriableSourceError(
                f"could not reach the token endpoint {redact(self.token_url)}: "
                f"{type(exc).__name__}"
            ) from None
        access = token.get("access_token")
        if not access:
            raise AuthenticationError(
                f"the token endpoint {redact(self.token_url)} returned no access_token"
            )
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
