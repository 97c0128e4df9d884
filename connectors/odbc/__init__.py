"""ODBC sources through pyodbc: any driver, legacy types mapped exactly, an Arrow fast path."""

from ._connection import ConnectionString
from ._connector import ODBCConnector, ODBCReadPlan, fast_path_available
from ._dialects import ANSIDialect, compile_sql, dialect_for, family_of
from ._types import ODBCColumn, column_type, datetimeoffset, graphic, graphic_decoder

__all__ = [
    "ANSIDialect",
    "ConnectionString",
    "ODBCColumn",
    "ODBCConnector",
    "ODBCReadPlan",
    "column_type",
    "compile_sql",
    "datetimeoffset",
    "dialect_for",
    "family_of",
    "fast_path_available",
    "graphic",
    "graphic_decoder",
]
