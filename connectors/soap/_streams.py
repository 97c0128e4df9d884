"""Stream declarations for SOAP sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigurationError
from .._paginate import Paginator
from .._records import AS_JSON, FLATTEN
from .._stream import Stream


@dataclass(frozen=True, kw_only=True)
class SOAPStream(Stream):
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
    record_path: str = ""
    paginator: Paginator | None = None
    since_arg: str | None = None
    nested: str = FLATTEN
    explode: str | None = None
    explode_keys: Mapping[str, str] = field(default_factory=dict)

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
        if self.explode_keys and not self.explode:
            raise ConfigurationError(f"stream {self.name!r}: explode_keys needs explode")
