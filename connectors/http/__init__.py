"""HTTP for web sources: one client policy (timeouts, retries, auth, rate limit, redaction)."""

from ._auth import APIKey, Auth, BasicAuth, BearerToken, OAuth2ClientCredentials
from ._client import DEFAULT_TIMEOUT, HTTPClient, describe, retry_after_seconds
from ._ratelimit import RateLimit, wait_needed

__all__ = [
    "DEFAULT_TIMEOUT",
    "APIKey",
    "Auth",
    "BasicAuth",
    "BearerToken",
    "HTTPClient",
    "OAuth2ClientCredentials",
    "RateLimit",
    "describe",
    "retry_after_seconds",
    "wait_needed",
]
