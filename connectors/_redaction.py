"""Redaction of credentials from anything that may be printed or logged.

Every error message and log line that may hold a URL, a connection string, a header or
a payload goes through :func:`redact`. Secrets known by value (read from the
configuration) are registered with :func:`register_secret` and scrubbed wherever they
appear, even in text this module cannot parse.
"""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Collection
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

MASK = "***"

_known_secrets: set[str] = set()
_lock = threading.Lock()

# scheme://user:password@host  ->  scheme://user:***@host (a "/" ends the authority).
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s/]*)@"
)
# Names whose value is a secret, alone or at the end of a longer name (auth_token,
# X-API-Key, client_secret).
_SECRET_NAMES = (
    r"[\w-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|signature"
    r"|private[_-]?key)|sig"
)
# key=value, key: value, "key": "value", 'key': 'value' (query strings, ODBC and
# libpq connection strings, headers, JSON and dict reprs). ODBC braces escape "}" as "}}".
# A name right after "/" is a path segment (".../oauth/token: refused"), not a key.
_KEY_VALUE = re.compile(
    rf"(?P<head>(?<![a-zA-Z0-9/])(?:{_SECRET_NAMES})[\"']?\s*[=:]\s*)"
    r"(?P<secret>'[^']*'|\"[^\"]*\"|\{(?:[^}]|\}\})*\}|[^\s;&,)}]+)",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token|digest)?\s*)"
    r"(?P<secret>[^\s,;'\"}]+)",
    re.IGNORECASE,
)


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it appears later, also
    URL-encoded (in a query string a log line or a link echoes) and XML-escaped (a
    WS-Security PasswordText in an envelope zeep logs writes ``&`` as ``&amp;``).

    Values shorter than four characters are ignored: masking them would garble text.
    """
    if value and len(value) >= 4:
        with _lock:
            _known_secrets.update({value, quote(value, safe=""), quote_plus(value),
                                   html.escape(value, quote=False), html.escape(value)})


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


def without_query_params(url: str, names: Collection[str]) -> str:
    """``url`` without the query parameters called ``names`` (credentials a server echoed
    in a link, before the link is stored); the other parameters are kept as written."""
    if not names or "?" not in url:
        return url
    parts = urlsplit(url)
    kept = [pair for pair in parts.query.split("&")
            if unquote_plus(pair.split("=", 1)[0]) not in names]
    return urlunsplit(parts._replace(query="&".join(kept)))


def mask_known_secrets(text: str) -> tuple[str, int]:
    """``text`` with every registered secret masked, also where it appears URL-encoded
    (a key echoed in a link), and how many were masked. Only known values are touched:
    for text that must keep its shape (a stored checkpoint), unlike :func:`redact`."""
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)  # encoded forms included
    found = 0
    for secret in secrets:
        if secret in text:
            found += text.count(secret)
            text = text.replace(secret, MASK)
    return text, found


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's fully formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
