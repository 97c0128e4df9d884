"""Stream declarations for REST sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigurationError
from .._paginate import Paginator
from .._records import AS_JSON, FLATTEN
from .._stream import Stream


@dataclass(frozen=True, kw_only=True)
class RESTStream(Stream):
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
    record_path: str = ""
    paginator: Paginator | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    since_param: str | None = None
    nested: str = FLATTEN

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nested not in (FLATTEN, AS_JSON):
            raise ConfigurationError(
                f"stream {self.name!r}: nested must be {FLATTEN!r} or {AS_JSON!r}"
            )
        if not self.primary_key:
            raise ConfigurationError(
                f"stream {self.name!r}: declare primary_key (the fields that identify a "
                "record) so pages can be merged and resumed without duplicates"
            )
