"""The demo CRM of the legacy estate: a JSON API behind a real OAuth2 authorization server.

:class:`CRMServer` serves three resources, each paginated the way some real CRM does it, so
every paginator a REST connector offers has a live counterpart:

* ``GET /api/accounts?limit=&cursor=``: an opaque cursor and the next page's URL in the body;
* ``GET /api/contacts?page=&per_page=`` or ``?offset=&limit=``: page numbers or offsets;
* ``GET /api/tickets?per_page=&page=&updated_since=``: a bare array, the next page in an
  RFC 8288 ``Link`` header, and an inclusive ``updated_since`` filter for incremental reads.

``POST /oauth/token`` is authlib's authorization server with the client-credentials grant.
Clients authenticate with ``client_secret_basic``, ``client_secret_post`` or
``private_key_jwt`` (RFC 7523) and receive opaque bearer tokens that expire; the API answers
a missing, unknown or expired token with 401 and ``WWW-Authenticate: Bearer
error="invalid_token"``. ``GET /health`` needs no token.

The data carries the quirks incremental sync has to survive: many ``updated_at`` ties (an
import job stamps an account's contacts at once, a nightly job closes tickets in one second),
``Z`` timestamps next to ``+00:00`` ones, money as two-decimal strings, postal codes with
leading zeros, mixed-case e-mails, blank phones and non-ASCII names. Account ``n`` is the
ERP's customer ``n`` (see ``_parties``), spelled the CRM's way, and keeps the ERP customer
number as typed by hand: blank, lower case, or mistyped beyond repair. Data entry left
the rest: a name mangled by a cp1252 import, "n/a" for an unknown e-mail, internal
extensions in the phone field. :meth:`CRMServer.touch`
plays a day of ticket activity, :meth:`CRMServer.expire_tokens` expires every token mid-run,
and :class:`Faults` makes the next requests fail the ways networks and busy APIs do.

The server is the standard library's ``wsgiref`` with a thread per request. authlib refuses
OAuth over plain HTTP except on loopback, so the server listens on a loopback address only.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import copy
import datetime as dt
import ipaddress
import json
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    OAuth2Request,
    ResourceProtector,
    TokenMixin,
)
from authlib.oauth2.rfc6749.errors import ForbiddenError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc.jwk import RSAKey

from ._parties import crm_spelling
from ._shared import (
    Counter,
    EstateServer,
    FaultSwitchboard,
    QuietHandler,
    serve_until_interrupted,
    stamps_after,
)

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "RESOURCES", "SCOPE", "CRMServer", "Faults",
           "main"]

SCOPE = "crm.read"
RESOURCES = ("accounts", "contacts", "tickets")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

_API_PREFIX = "/api/"
_HANG_UP = "headwater.hang_up"  # environ key of the request handler's hang-up callable
_CURSOR_PREFIX = "after:"
_BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_NIGHTLY_CLOSE = dt.datetime(2024, 3, 1, 2, 0, tzinfo=dt.UTC)
_TIE_SHARE = 0.2
_STATUSES = ("open", "pending", "closed")
_PRIORITIES = ("low", "normal", "normal", "high", "urgent")
_INDUSTRIES = ("Manufacturing", "Retail", "Logistics", "Healthcare", "Finance", "Energy")
_TAGS = ("key-account", "partner", "churn-risk", "migrated-2019", "do-not-call", "EMEA")
_PLACES = (("DE", "Dresden", "01067"), ("GB", "London", "EC1A 1BB"), ("US", "Boston", "02108"),
           ("FR", "Lyon", "69001"), ("NL", "Utrecht", "3511 AB"), ("PL", "Łódź", "90-001"),
           ("JP", "Kōbe", "650-0001"), ("BR", "São Paulo", "01310-100"))
_STREETS = ("Harbour Road", "Hauptstraße", "Main St.", "Rue de la Paix", "Industrieweg")
_FIRST_NAMES = ("Anna", "James", "Priya", "Wei", "Olga", "Mateo", "Fatima", "John", "Zoë")
_LAST_NAMES = ("Smith", "Kowalski", "Nguyen", "O'Brien", "Müller", "Patel", "Tanaka", "Silva")
_MAIL_DOMAINS = ("example.com", "example.org", "mail.example.net")
_SUBJECTS = ("Invoice does not match PO", "Cannot log in to portal", "Delivery delayed",
             "Request for quote", "Damaged goods on arrival", "Change billing address")

_FaultKind = Literal["rate_limit", "unavailable", "drop", "slow", "malformed"]


# -- faults -------------------------------------------------------------------------------


@dataclass
class _Fault:
    kind: _FaultKind
    remaining: int
    path: str | None
    retry_after: str = "1"
    seconds: float = 0.0

    def matches(self, path: str) -> bool:
        return path.startswith(self.path if self.path is not None else _API_PREFIX)


class Faults(FaultSwitchboard[_Fault]):
    """Switches that make the next requests fail; safe to flip from any thread.

    Each switch arms a fault for the next ``count`` matching requests. A request takes the
    earliest armed fault that matches it, so faults armed one after another happen in that
    order. Without ``path`` a fault matches API requests (``/api/...``) only, never the token
    endpoint; with ``path`` it matches requests whose path starts with that prefix, which is
    also how to fault ``/oauth/token`` itself.
    """

    def rate_limit(
        self, count: int = 1, retry_after: str = "1", *, path: str | None = None
    ) -> None:
        """Answer 429 with ``Retry-After`` sent verbatim (seconds or an HTTP date)."""
        self.arm(_Fault("rate_limit", count, path, retry_after=retry_after))

    def unavailable(self, count: int = 1, *, path: str | None = None) -> None:
        """Answer 503 with the HTML page a gateway in front of the CRM would send."""
        self.arm(_Fault("unavailable", count, path))

    def drop(self, count: int = 1, *, path: str | None = None) -> None:
        """Close the connection without sending any response."""
        self.arm(_Fault("drop", count, path))

    def slow(self, count: int = 1, seconds: float = 2.0, *, path: str | None = None) -> None:
        """Sleep ``seconds`` before answering normally."""
        self.arm(_Fault("slow", count, path, seconds=seconds))

    def malformed(self, count: int = 1, *, path: str | None = None) -> None:
        """Answer 200 with the first half of the real body: truncated, invalid JSON."""
        self.arm(_Fault("malformed", count, path))

    def take(self, path: str) -> _Fault | None:
        """The fault the next request to ``path`` suffers, counted off; the server calls this."""
        return self._take(lambda fault: fault.matches(path))


# -- data ---------------------------------------------------------------------------------


def _zulu(stamp: dt.datetime) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(text: str) -> dt.datetime:
    """An ISO 8601 timestamp as an aware datetime; a naive one is taken as UTC."""
    stamp = dt.datetime.fromisoformat(text)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _after(rng: random.Random, start: dt.datetime, days: int) -> dt.datetime:
    return start + dt.timedelta(seconds=rng.randrange(days * 86_400))


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _build_accounts(rng: random.Random, count: int) -> list[dict[str, Any]]:
    # Quirks are placed by position, not by chance, so even a small build has them.
    accounts: list[dict[str, Any]] = []
    for number in range(1, count + 1):
        name = crm_spelling(number)  # account n is the ERP's customer n
        if number % 17 == 3:
            name += "  "  # keyed in from a fixed-width screen
        if number % 74 == 42:
            name = _mojibake(name)  # imported once from a cp1252 export
        country, city, postal_code = rng.choice(_PLACES)
        created = _after(rng, _BASE_TIME - dt.timedelta(days=14 * 365), 14 * 365)
        if accounts and rng.random() < _TIE_SHARE:
            updated = accounts[-1]["updated_at"]
        else:
            updated = _zulu(_after(rng, _BASE_TIME, 180))
        accounts.append({
            "id": f"ACC-{number:05d}",
            "name": name,
            "industry": rng.choice(_INDUSTRIES),
            "country": country,
            "annual_revenue": _money(0 if number % 29 == 0 else rng.randrange(10**12)),
            "created_at": _zulu(created),
            "updated_at": updated,
            "address": {"street": f"{rng.randint(1, 250)} {rng.choice(_STREETS)}",
                        "city": city, "postal_code": postal_code},
            "tags": rng.sample(_TAGS, rng.randint(0, 3)),
            "erp_customer_no": _erp_reference(number),
        })
    return accounts


def _mojibake(text: str) -> str:
    """``text`` as a cp1252 reader shows its UTF-8 bytes: "Müller" becomes "MÃ¼ller".

    Bytes cp1252 leaves undefined are read as latin-1 does, as old import tools did.
    """
    data = text.encode("utf-8")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _erp_reference(number: int) -> str:
    """The ERP customer number a sales rep typed into the account, as typed."""
    if number % 10 == 0:
        return ""  # never filled in
    if number % 41 == 0:
        return f"C-{number:05d}"  # a typo that no cleaning can mend
    reference = f"C{number:05d}"
    return reference.lower() if number % 7 == 0 else reference


def _build_contacts(
    rng: random.Random, accounts: Sequence[dict[str, Any]], per_account: int
) -> list[dict[str, Any]]:
    contacts: list[dict[str, Any]] = []
    for account in accounts:
        imported = _after(rng, _BASE_TIME, 180)  # the import job stamps an account at once
        for _ in range(per_account):
            contact_id = len(contacts) + 1
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            stamp = imported if rng.random() < 0.5 else _after(rng, _BASE_TIME, 180)
            contacts.append({
                "id": contact_id,
                "account_id": account["id"],
                "first_name": first,
                "last_name": last,
                "email": _email(first, last, rng.choice(_MAIL_DOMAINS), contact_id),
                "phone": _phone(rng, contact_id),
                "updated_at": stamp.isoformat(),  # "+00:00", unlike the other resources
            })
    return contacts


def _email(first: str, last: str, domain: str, contact_id: int) -> str:
    if contact_id % 53 == 0:
        return "n/a"  # the legacy form would not save without something in the field
    address = f"{first}.{last.replace(chr(39), '')}@{domain}"
    if contact_id % 7 == 0:
        return address.upper()  # typed with caps lock on
    return address if contact_id % 5 == 0 else address.lower()


def _phone(rng: random.Random, contact_id: int) -> str:
    if contact_id % 13 == 0:
        return ""  # the legacy form stored "" for unknown
    number = rng.randrange(10**7, 10**8)
    if contact_id % 71 == 0:
        return f"ext. {number % 1000}"  # an internal extension, not a number to dial
    return rng.choice((f"+44 20 {number // 10**4} {number % 10**4:04d}",
                       f"({number // 10**5:03d}) 555-{number % 10**4:04d}",
                       f"0049-89-{number}"))


def _build_tickets(
    rng: random.Random, account_ids: Sequence[str], count: int
) -> dict[int, dict[str, Any]]:
    tickets: dict[int, dict[str, Any]] = {}
    previous: dt.datetime | None = None
    for ticket_id in range(1, count + 1):
        opened = _after(rng, _BASE_TIME - dt.timedelta(days=365), 500)
        status = rng.choice(_STATUSES)
        if status == "closed" and opened < _NIGHTLY_CLOSE and rng.random() < 0.4:
            updated = _NIGHTLY_CLOSE  # the nightly job closes in bulk, all in one second
        elif previous is not None and previous >= opened and rng.random() < _TIE_SHARE:
            updated = previous
        else:
            updated = opened + dt.timedelta(seconds=rng.randrange(45 * 86_400))
        previous = updated
        tickets[ticket_id] = _ticket(rng, ticket_id, rng.choice(account_ids), status, opened,
                                     updated)
    return tickets


def _ticket(
    rng: random.Random, ticket_id: int, account_id: str, status: str, opened: dt.datetime,
    updated: dt.datetime,
) -> dict[str, Any]:
    return {"id": ticket_id, "account_id": account_id, "subject": rng.choice(_SUBJECTS),
            "status": status, "priority": rng.choice(_PRIORITIES), "opened_at": _zulu(opened),
            "updated_at": _zulu(updated)}


class _Dataset:
    """The CRM's records, read by request threads while ``touch`` changes tickets.

    Records are never changed in place: ``touch`` replaces a ticket's dict, so a snapshot
    of references taken under the lock stays consistent after the lock is released.
    """

    def __init__(self, seed: int, accounts: int, contacts_per_account: int, tickets: int):
        rng = random.Random(seed)
        self._lock = threading.Lock()
        self._accounts = _build_accounts(rng, accounts)
        self._contacts = _build_contacts(rng, self._accounts, contacts_per_account)
        self._account_ids = [account["id"] for account in self._accounts]
        self._tickets = _build_tickets(rng, self._account_ids, tickets)
        self._by_update: tuple[list[dict[str, Any]], list[dt.datetime]] | None = None

    def tickets_by_update(self) -> tuple[list[dict[str, Any]], list[dt.datetime]]:
        """Tickets ordered by (updated_at, id) and their instants, kept until ``touch``:
        sorting 200,000 tickets for every page would make the server the benchmark."""
        with self._lock:
            if self._by_update is None:
                keyed = sorted(((_instant(t["updated_at"]), t["id"], t)
                                for t in self._tickets.values()), key=lambda k: k[:2])
                self._by_update = ([t for _, _, t in keyed], [i for i, _, _ in keyed])
            return self._by_update

    def snapshot(self, resource: str) -> list[dict[str, Any]]:
        """The records of ``resource`` ordered by id, as the API serves them."""
        if resource == "tickets":
            with self._lock:
                return [self._tickets[key] for key in sorted(self._tickets)]
        if resource in RESOURCES:
            return list(self._accounts if resource == "accounts" else self._contacts)
        raise ValueError(f"resource must be one of {', '.join(RESOURCES)}, got {resource!r}")

    def touch(self, changed: int, added: int, seed: int) -> dict[str, int]:
        """Give ``changed`` tickets a new status and add ``added``, all stamped after the rest."""
        if changed < 0 or added < 0:
            raise ValueError(f"changed and added must be zero or more, got {changed}, {added}")
        if added and not self._account_ids:
            raise ValueError("cannot add tickets to a CRM without accounts")
        rng = random.Random(seed)
        with self._lock:
            self._by_update = None
            tickets = self._tickets
            latest = max((_instant(t["updated_at"]) for t in tickets.values()),
                         default=_BASE_TIME)
            picked = rng.sample(sorted(tickets), min(changed, len(tickets)))
            stamps = stamps_after(rng, latest, len(picked) + added, _TIE_SHARE)
            for ticket_id, stamp in zip(picked, stamps, strict=False):
                old = tickets[ticket_id]
                status = rng.choice([s for s in _STATUSES if s != old["status"]])
                tickets[ticket_id] = {**old, "status": status, "updated_at": _zulu(stamp)}
            first_id = max(tickets, default=0) + 1
            for offset, stamp in enumerate(stamps[len(picked):]):
                tickets[first_id + offset] = _ticket(rng, first_id + offset,
                                                     rng.choice(self._account_ids), "open",
                                                     stamp, stamp)
        return {"changed": len(picked), "added": added}


# -- HTTP messages and pagination ---------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    """What the routes need of a WSGI request; authlib reads ``headers`` too."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


class _BadRequest(Exception):
    """A query parameter the API cannot serve; the message says which and why."""


def _json(status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> _Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return _Response(status, body, [("Content-Type", "application/json"), *headers])


def _authlib_response(status: int, body: Any, headers: list[tuple[str, str]]) -> _Response:
    """authlib's (status, body, headers) triple as a response; its headers name the type."""
    return _Response(status, json.dumps(body).encode(), list(headers))


def _int_param(
    query: Mapping[str, str], name: str, default: int, maximum: int | None = None,
    minimum: int = 1,
) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest(f"{name} must be a whole number, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        limit = f"between {minimum} and {maximum}" if maximum else f"at least {minimum}"
        raise _BadRequest(f"{name} must be {limit}, got {value}")
    return value


def _page_size(query: Mapping[str, str], name: str) -> int:
    return _int_param(query, name, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode()


def _decode_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError among them
        text = ""
    if not text.startswith(_CURSOR_PREFIX):
        raise _BadRequest("cursor is not one this API issued; pass next_cursor back unchanged")
    return text.removeprefix(_CURSOR_PREFIX)


def _accounts_page(
    accounts: Sequence[dict[str, Any]], query: Mapping[str, str], base_url: str
) -> _Response:
    """Accounts after the cursor, by id, with the next cursor and next URL in the body."""
    limit = _page_size(query, "limit")
    start = 0
    if "cursor" in query:
        start = bisect.bisect_right([a["id"] for a in accounts], _decode_cursor(query["cursor"]))
    page = accounts[start : start + limit]
    cursor = _encode_cursor(page[-1]["id"]) if start + limit < len(accounts) else None
    next_url = f"{base_url}?{urlencode({'limit': limit, 'cursor': cursor})}" if cursor else None
    return _json(200, {"data": page, "next_cursor": cursor, "links": {"next": next_url}})


def _contacts_page(contacts: Sequence[dict[str, Any]], query: Mapping[str, str]) -> _Response:
    """Contacts by id, paged by ``page``/``per_page`` or by ``offset``/``limit``."""
    total = len(contacts)
    if "offset" in query or "limit" in query:
        if "page" in query or "per_page" in query:
            raise _BadRequest("use page and per_page, or offset and limit, not both")
        offset = _int_param(query, "offset", 0, minimum=0)
        limit = _page_size(query, "limit")
        return _json(200, {"results": contacts[offset : offset + limit], "offset": offset,
                           "limit": limit, "total": total})
    page = _int_param(query, "page", 1)
    per_page = _page_size(query, "per_page")
    start = (page - 1) * per_page
    return _json(200, {"results": contacts[start : start + per_page], "page": page,
                       "per_page": per_page, "total_pages": -(-total // per_page),
                       "total": total})


def _tickets_page(
    by_update: tuple[list[dict[str, Any]], list[dt.datetime]], query: Mapping[str, str],
    base_url: str,
) -> _Response:
    """Tickets by (updated_at, id) as a bare array; the next page in a ``Link`` header."""
    per_page = _page_size(query, "per_page")
    page = _int_param(query, "page", 1)
    ordered, instants = by_update
    first = bisect.bisect_left(instants, _since(query["updated_since"])) \
        if "updated_since" in query else 0
    start = first + (page - 1) * per_page
    headers = []
    if start + per_page < len(ordered):
        params = {**query, "per_page": per_page, "page": page + 1}
        headers.append(("Link", f'<{base_url}?{urlencode(params)}>; rel="next"'))
    return _json(200, ordered[start : start + per_page], headers)


def _since(text: str) -> dt.datetime:
    try:
        return _instant(text)
    except ValueError:
        raise _BadRequest(
            f"updated_since must be an ISO 8601 timestamp (URL-encode a '+'), got {text!r}"
        ) from None


# -- OAuth 2.0 on authlib -----------------------------------------------------------------


@dataclass(frozen=True)
class _Client(ClientMixin):
    """A registered client and the token-endpoint authentication methods it may use."""

    client_id: str
    auth_methods: frozenset[str]
    # Out of the repr: authlib logs the client it authenticated.
    secret: str | None = field(default=None, repr=False)
    public_key: RSAKey | None = field(default=None, repr=False)

    def check_client_secret(self, client_secret: str) -> bool:
        # Bytes, because compare_digest rejects non-ASCII strings with a TypeError.
        return self.secret is not None and secrets.compare_digest(
            self.secret.encode(), client_secret.encode()
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in self.auth_methods

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == ClientCredentialsGrant.GRANT_TYPE

    def get_allowed_scope(self, scope: str | None) -> str:
        # The server rejects scopes other than SCOPE first, so this is SCOPE either way.
        return SCOPE


@dataclass
class _Token(TokenMixin):
    """An issued access token; ``expires_at`` is on the ``time.monotonic`` clock."""

    scope: str
    expires_at: float

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.monotonic() >= self.expires_at

    def is_revoked(self) -> bool:
        return False


class _TokenStore:
    """Issued access tokens, shared by the token endpoint and the API's bearer check."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        # The response says whole seconds, rounded down so a client refreshes in time.
        self.expires_in = max(1, int(ttl))
        self.issued = 0
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}

    def save(self, token: Mapping[str, Any]) -> None:
        with self._lock:
            expires_at = time.monotonic() + self.ttl
            self._tokens[token["access_token"]] = _Token(token.get("scope", ""), expires_at)
            self.issued += 1

    def find(self, access_token: str) -> _Token | None:
        with self._lock:
            return self._tokens.get(access_token)

    def expire_all(self) -> None:
        with self._lock:
            now = time.monotonic()
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, now)


class _BearerValidator(BearerTokenValidator):
    """authlib's RFC 6750 checks (unknown, expired) against the token store."""

    def __init__(self, tokens: _TokenStore) -> None:
        super().__init__()
        self._tokens = tokens

    def authenticate_token(self, token_string: str) -> _Token | None:
        return self._tokens.find(token_string)


class _OAuth2Request(OAuth2Request):
    """A parsed request in the shape authlib's grant and client authentication read."""

    def __init__(self, request: _Request, uri: str) -> None:
        super().__init__(request.method, uri, headers=request.headers)
        self._form = request.form
        self.payload = BasicOAuth2Payload({**request.query, **request.form})

    @property
    def form(self) -> dict[str, str]:
        """The urlencoded body: ``client_secret_post`` and ``private_key_jwt`` read it."""
        return self._form


class _PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt``: an assertion signed with the client's RSA key (RFC 7523 §2.2).

    authlib checks the signature against :meth:`resolve_client_public_key`, the claims
    (``iss`` = ``sub`` = client id, ``aud``, ``exp``) and asks :meth:`validate_jti` whether
    the assertion is being replayed.
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, token_url: str) -> None:
        super().__init__(leeway=5)
        self._token_url = token_url
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()  # a demo server lives minutes: never pruned

    def get_audiences(self) -> list[str]:
        return [self._token_url]

    def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
        with self._lock:
            key = (claims["sub"], jti)
            fresh = key not in self._seen
            self._seen.add(key)
            return fresh

    def resolve_client_public_key(self, client: _Client) -> RSAKey | None:
        return client.public_key


class _ClientCredentialsGrant(ClientCredentialsGrant):
    """The client-credentials grant, open to each client authentication method the CRM has.

    ``client_secret_basic`` stays first: authlib answers a failed authentication with 401
    rather than 400 only when that method is among those tried.
    """

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post",
                                   _PrivateKeyJWT.CLIENT_AUTH_METHOD]

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Issue a token as authlib does, minus its debug log line that holds the token.

        A server must not log bearer tokens, and in tests this one shares the process (and
        the log) with clients whose logs are checked for leaked secrets.
        """
        token = self.generate_token(scope=self.request.payload.scope,
                                    include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class _AuthorizationServer(AuthorizationServer):
    """authlib's authorization server wired to the CRM's clients, tokens and WSGI app.

    authlib leaves the framework half to integrations (its Flask and Django ones): turning a
    request into an ``OAuth2Request``, its (status, body, headers) into a response, looking
    up clients, saving tokens and sending signals. This is that half.
    """

    def __init__(self, clients: Mapping[str, _Client], tokens: _TokenStore, token_url: str):
        super().__init__(scopes_supported=[SCOPE])
        self._clients = clients
        self._tokens = tokens
        self._token_url = token_url
        generator = BearerTokenGenerator(_opaque_token, expires_generator=tokens.expires_in)
        self.register_token_generator("default", generator)
        self.register_client_auth_method(_PrivateKeyJWT.CLIENT_AUTH_METHOD,
                                         _PrivateKeyJWT(token_url))
        self.register_grant(_ClientCredentialsGrant)

    def query_client(self, client_id: str) -> _Client | None:
        return self._clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self._tokens.save(token)

    def create_oauth2_request(self, request: _Request) -> _OAuth2Request:
        return _OAuth2Request(request, self._token_url)

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Any:
        return _authlib_response(status, body, headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Ignore authlib's signals (the base class raises): the CRM has no listeners."""


def _opaque_token(**_context: Any) -> str:
    return secrets.token_urlsafe(32)


# -- the server ---------------------------------------------------------------------------


class _RequestHandler(QuietHandler):
    """The quiet request handler, able to hang up without answering."""

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[_HANG_UP] = self._hang_up
        return environ

    def _hang_up(self) -> None:
        # wsgiref's later write fails with a broken pipe, which it ignores by design.
        self.connection.shutdown(socket.SHUT_RDWR)


class CRMServer(EstateServer):
    """The demo CRM on a local port: data from ``seed``, OAuth2, three paginated resources.

    Use it as a context manager or call :meth:`start` and :meth:`stop`. The client
    credentials, the JWT client's private key and the faults are available before it starts;
    :attr:`url` and :attr:`token_url` once it has.
    """

    name = "CRM"
    handler_class = _RequestHandler


    client_id = "headwater"
    jwt_client_id = "headwater-jwt"

    def __init__(
        self, accounts: int = 120, contacts_per_account: int = 3, tickets: int = 400,
        seed: int = 7, token_ttl: float = 300.0, host: str = "127.0.0.1", port: int = 0,
    ) -> None:
        if min(accounts, contacts_per_account, tickets) < 0:
            raise ValueError("accounts, contacts_per_account and tickets must be zero or more")
        if tickets and not accounts:
            raise ValueError("tickets belong to accounts: give accounts too, or no tickets")
        if token_ttl <= 0:
            raise ValueError(f"token_ttl must be positive, got {token_ttl}")
        if not _is_loopback(host):
            raise ValueError(f"host must be a loopback address (authlib wants HTTPS elsewhere), "
                             f"got {host!r}")
        self.faults = Faults()
        self.client_secret = secrets.token_urlsafe(24)
        jwt_key = RSAKey.generate_key(2048, private=True)
        self.jwt_private_key_pem: bytes = jwt_key.as_pem(private=True)
        self._clients = {
            self.client_id: _Client(self.client_id,
                                    frozenset({"client_secret_basic", "client_secret_post"}),
                                    secret=self.client_secret),
            self.jwt_client_id: _Client(self.jwt_client_id, frozenset({"private_key_jwt"}),
                                        public_key=RSAKey.import_key(jwt_key.as_pem())),
        }
        self._data = _Dataset(seed, accounts, contacts_per_account, tickets)
        self._tokens = _TokenStore(token_ttl)
        self._protector = ResourceProtector()
        self._protector.register_token_validator(_BearerValidator(self._tokens))
        self._api_requests = Counter()
        self._authorization: _AuthorizationServer | None = None
        super().__init__(host, port)

    @property
    def token_url(self) -> str:
        """The authorization server's token endpoint, also the JWT assertions' audience."""
        return self.url + "/oauth/token"

    @property
    def token_requests(self) -> int:
        """Access tokens issued so far (failed token requests do not count)."""
        return self._tokens.issued

    @property
    def api_requests(self) -> int:
        """Requests to ``/api/...`` so far, whatever their outcome, faulted ones included."""
        return self._api_requests.value

    def _started(self) -> None:
        self._authorization = _AuthorizationServer(self._clients, self._tokens, self.token_url)

    def touch(self, changed: int, added: int, seed: int = 11) -> dict[str, int]:
        """Play a day of ticket activity; return ``{"changed": n, "added": n}``.

        ``changed`` random tickets (fewer if there are fewer) get a different status and
        ``added`` new ones are opened with ids above the highest. Every ticket touched is
        stamped within the day after the latest ``updated_at`` stored, some of them tied.
        """
        return self._data.touch(changed, added, seed)

    def expire_tokens(self) -> None:
        """Make every token issued so far expired, as if the run outlived them."""
        self._tokens.expire_all()

    def records(self, resource: str) -> list[dict[str, Any]]:
        """A copy of every record of ``resource`` (accounts, contacts, tickets) by id."""
        return copy.deepcopy(self._data.snapshot(resource))

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """The WSGI application: count, apply an armed fault, route."""
        request = _read_request(environ)
        if request.path.startswith(_API_PREFIX):
            self._api_requests.increment()
        fault = self.faults.take(request.path)
        response = self._route(request) if fault is None else self._fault(request, fault, environ)
        headers = [*response.headers, ("Content-Length", str(len(response.body)))]
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        return [response.body]

    def _fault(self, request: _Request, fault: _Fault, environ: dict[str, Any]) -> _Response:
        if fault.kind == "rate_limit":
            return _json(429, {"error": "rate_limited", "error_description": "slow down"},
                         [("Retry-After", fault.retry_after)])
        if fault.kind == "unavailable":
            return _Response(503, b"<html><body><h1>503 Service Unavailable</h1></body></html>",
                             [("Content-Type", "text/html")])
        if fault.kind == "drop":
            environ[_HANG_UP]()
            return _Response(200, b"")  # never reaches the client
        if fault.kind == "slow":
            time.sleep(fault.seconds)
            return self._route(request)
        real = self._route(request)
        return _Response(200, real.body[: len(real.body) // 2], real.headers)

    def _route(self, request: _Request) -> _Response:
        if request.path == "/health":
            return _Response(200, b"ok", [("Content-Type", "text/plain")])
        if request.path == "/oauth/token":
            assert self._authorization is not None  # set by start(), before any request
            return self._authorization.create_token_response(request)
        resource = request.path.removeprefix(_API_PREFIX)
        if not request.path.startswith(_API_PREFIX) or resource not in RESOURCES:
            return _json(404, {"error": "not_found", "error_description": request.path})
        if request.method != "GET":
            return _json(405, {"error": "method_not_allowed"}, [("Allow", "GET")])
        try:
            self._check_bearer(request)
            return self._read(resource, request.query)
        except InvalidTokenError as error:
            return _authlib_response(*error())
        except _BadRequest as error:
            return _json(400, {"error": "invalid_request", "error_description": str(error)})

    def _check_bearer(self, request: _Request) -> None:
        """Raise ``InvalidTokenError`` unless the request carries a live bearer token."""
        try:
            self._protector.validate_request(None, request)
        except ForbiddenError as error:  # no Authorization header, or not a bearer token
            # Reported as invalid_token too, so that clients need one rule: 401 means refresh.
            raise InvalidTokenError(description=error.description or None) from error

    def _read(self, resource: str, query: Mapping[str, str]) -> _Response:
        base_url = f"{self.url}{_API_PREFIX}{resource}"
        if resource == "tickets":
            return _tickets_page(self._data.tickets_by_update(), query, base_url)
        records = self._data.snapshot(resource)
        if resource == "accounts":
            return _accounts_page(records, query, base_url)
        return _contacts_page(records, query)


def _is_loopback(host: str) -> bool:
    try:
        # IPv4 only: wsgiref's server binds an AF_INET socket.
        return host == "localhost" or ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return False


def _read_request(environ: Mapping[str, Any]) -> _Request:
    headers = {key[5:].replace("_", "-").title(): value
               for key, value in environ.items() if key.startswith("HTTP_")}
    headers["Content-Type"] = environ.get("CONTENT_TYPE", "")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    form = {}
    if headers["Content-Type"].startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    return _Request(environ["REQUEST_METHOD"], environ["PATH_INFO"], query, headers, form)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the demo CRM until Ctrl-C, printing where it is and how to log in."""
    parser = argparse.ArgumentParser(description="Serve the legacy estate's demo CRM.")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data")
    parser.add_argument("--accounts", type=int, default=120, help="accounts to generate")
    parser.add_argument("--tickets", type=int, default=400, help="tickets to generate")
    args = parser.parse_args(argv)
    with CRMServer(seed=args.seed, port=args.port, accounts=args.accounts,
                   tickets=args.tickets) as server:
        # The one place the secrets are shown: a local demo server's console.
        print(f"CRM API:        {server.url}/api/{{accounts,contacts,tickets}}")
        print(f"Token endpoint: {server.token_url}")
        print(f"client_secret_basic/post: {server.client_id} / {server.client_secret}")
        print(f"private_key_jwt: {server.jwt_client_id}, RS256 key:")
        print(server.jwt_private_key_pem.decode(), flush=True)
        serve_until_interrupted()


if __name__ == "__main__":
    main()
