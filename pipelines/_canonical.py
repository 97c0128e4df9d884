"""Canonical JSON, content hashes and token estimates for documents a model reads.

Context documents and model outputs are stored as JSON text. The text is canonical
(sorted keys, no spaces, decimals and dates as strings) so that equal content gives an
equal hash on every run, which is what the model cache keys on.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import math
from typing import Any

import orjson

CHARS_PER_TOKEN = 4
# Instants go through _plain so that every one is written in UTC with a Z.
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def _plain(value: Any) -> Any:
    """Values JSON has no type for: decimals stay exact as text, aware instants become
    ISO 8601 in UTC with ``Z``, naive ones and dates plain ISO 8601."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot put a {type(value).__name__} into a context document")


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text: the same content always gives the same text.

    The text is what ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` writes; orjson writes it several times faster, and reruns over
    thousands of cached answers spend most of their time here.
    """
    return orjson.dumps(value, default=_plain, option=_OPTIONS).decode("utf-8")


def content_hash(text: str) -> str:
    """The SHA-256 of ``text`` (UTF-8), in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def estimate_tokens(text: str) -> int:
    """Tokens a model will count for ``text``, estimated as one per four characters.

    Deterministic and tokenizer-free on purpose: budgets and trims must not change with
    the provider. For English and JSON it is within about 20% of BPE tokenizers.
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)
