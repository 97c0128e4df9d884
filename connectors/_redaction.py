"""Redaction of credentials from anything that may be printed or logged.

Every error message and log line that may hold a URL, a connection string, a header or
a payload goes through :func:`redact`. Secrets known by value (read from the
configuration) are registered with :func:`register_secret` and scrubbed wherever they
appear, even in text this module cannot parse.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

_known_secrets: set[str] = set()
_lock = threading.Lock()

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)@")
# key=value pairs in query strings, ODBC and libpq connection strings.
_SECRET_KEYS = (
    r"password|passwd|pwd|secret|client_secret|access_token|refresh_token|token|api_?key"
    r"|apikey|sig|signature|private_key"
)
_KEY_VALUE = re.compile(
    rf"(?P<head>(?<![a-zA-Z0-9_])(?:{_SECRET_KEYS})\s*[=:]\s*)(?P<secret>'[^']*'|\"[^\"]*\"|\{{[^}}]*\}}|[^\s;&,)]+)",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:authorization|proxy-authorization)\s*[:=]\s*(?:bearer|basic|token)?\s*)"
    r"(?P<secret>[^\s,;]+)",
    re.IGNORECASE,
)


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it appears later.

    Values shorter than four characters are ignored: masking them would garble text.
    """
    if value and len(value) >= 4:
        with _lock:
            _known_secrets.add(value)


def redact(text: object) -> str:
    """Return ``text`` as a string with passwords, tokens and known secrets masked."""
    out = str(text)
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        out = out.replace(secret, MASK)
    out = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + "@", out)
    out = _AUTH_HEADER.sub(lambda m: m["head"] + MASK, out)
    return _KEY_VALUE.sub(lambda m: m["head"] + MASK, out)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's fully formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True
