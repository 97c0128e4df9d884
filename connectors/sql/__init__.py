"""SQL sources through SQLAlchemy: any dialect, keyset-chunked, exact Arrow types."""

from ._connector import SQLConnector, create_source_engine, describe_url
from ._keyset import after_key, chunk_select
from ._plan import ReadPlan
from ._streams import SQLQuery, SQLTable
from ._translate import translate_error
from ._types import arrow_type, declared_column_type

__all__ = [
    "ReadPlan",
    "SQLConnector",
    "SQLQuery",
    "SQLTable",
    "after_key",
    "arrow_type",
    "chunk_select",
    "create_source_engine",
    "declared_column_type",
    "describe_url",
    "translate_error",
]
