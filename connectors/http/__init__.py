"""HTTP for web sources: one client policy (deadlines, retries, auth, rate limit, size
bounds, redaction)."""

from ._auth import APIKey, Auth, BasicAuth, BearerToken, OAuth2ClientCredentials
from ._client import DEFAULT_DEADLINE, DEFAULT_TIMEOUT, HTTPClient, describe, retry_after_seconds
from ._deadline import DEFAULT_MAX_RESPONSE_BYTES, Deadline, WatchedAdapter, armed, read_body
from ._ratelimit import RateLimit, wait_needed

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "APIKey",
    "Auth",
    "BasicAuth",
    "BearerToken",
    "Deadline",
    "HTTPClient",
    "OAuth2ClientCredentials",
    "RateLimit",
    "WatchedAdapter",
    "armed",
    "describe",
    "read_body",
    "retry_after_seconds",
    "wait_needed",
]
