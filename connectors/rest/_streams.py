"""Stream declarations for REST sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._paged import PagedStream


@dataclass(frozen=True, kw_only=True)
class RESTStream(PagedStream):
    """An endpoint that lists records.

    ``path`` is relative to the connector's base URL; ``record_path`` says where the
    records are in the body (``data``, ``$.results[*]``; empty for a bare list);
    ``paginator`` walks the pages (one page if ``None``). For incremental streams,
    ``since_param`` sends the window start to the server (``updated_since``-style);
    without it the records are filtered by their cursor field as they arrive. Nested
    objects are flattened to ``parent__child`` columns, or kept as JSON text with
    ``nested="json"``.
    """

    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    since_param: str | None = None
