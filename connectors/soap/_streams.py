"""Stream declarations for SOAP sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigurationError
from .._paged import PagedStream


@dataclass(frozen=True, kw_only=True)
class SOAPStream(PagedStream):
    """An operation that lists records.

    ``arguments`` are sent with every call; ``record_path`` says where the repeating
    record element is in the response (``shipment``, ``result.items.item``);
    ``paginator`` adds the arguments of each page or window (``CursorInBody`` for a
    continuation token in the response, ``PageNumber``, ``DateWindows``). For
    incremental streams ``since_arg`` sends the window start. Nested elements are
    flattened to ``parent__child`` columns (``nested="json"`` keeps them as JSON);
    repeated children are JSON text, or, with ``explode="event"``, each child becomes
    a record of its own carrying the parent fields named in ``explode_keys``
    (``{"shipment_id": "id"}``).
    """

    operation: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    since_arg: str | None = None
    explode: str | None = None
    explode_keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.explode_keys and not self.explode:
            raise ConfigurationError(f"stream {self.name!r}: explode_keys needs explode")
