"""REST sources: JSON APIs behind OAuth2, API keys or basic auth, page by page into Arrow."""

from .._paginate import (
    CursorInBody,
    DateWindows,
    LinkHeader,
    NextURLInBody,
    Offset,
    Page,
    PageLoop,
    PageNumber,
    PageProgress,
    PageResult,
    Paginator,
    parse_link_header,
)
from .._records import coerce, flatten, select_records, value_at
from ._connector import RESTConnector
from ._streams import RESTStream

__all__ = [
    "CursorInBody",
    "DateWindows",
    "LinkHeader",
    "NextURLInBody",
    "Offset",
    "Page",
    "PageLoop",
    "PageNumber",
    "PageProgress",
    "PageResult",
    "Paginator",
    "RESTConnector",
    "RESTStream",
    "coerce",
    "flatten",
    "parse_link_header",
    "select_records",
    "value_at",
]
