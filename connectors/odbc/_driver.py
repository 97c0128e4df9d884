"""pyodbc, loaded when an ODBC connector first needs it.

pyodbc links against the unixODBC library (``libodbc.so.2``). Loading it lazily keeps
every other connector kind usable on a machine without unixODBC, and turns a missing
library into one line that names the package to install.
"""

from __future__ import annotations

import functools
from types import ModuleType

from .._errors import ConfigurationError

UNIXODBC_LIBRARY = "libodbc.so.2"
UNIXODBC_PACKAGE = "unixodbc"


@functools.cache
def pyodbc_module() -> ModuleType:
    """The ``pyodbc`` module; a :class:`ConfigurationError` naming what to install when
    it cannot be loaded."""
    try:
        import pyodbc
    except ImportError as exc:
        raise ConfigurationError(missing_odbc_message(exc)) from None
    return pyodbc


def missing_odbc_message(exc: ImportError) -> str:
    """Why pyodbc cannot be loaded, and what to install."""
    text = str(exc)
    if "libodbc" in text or "shared object" in text:
        return (f"ODBC sources need the unixODBC library ({UNIXODBC_LIBRARY}), which this "
                f"machine lacks: install the Debian package {UNIXODBC_PACKAGE} "
                f"(apt-get install {UNIXODBC_PACKAGE}) and an ODBC driver for your database")
    return ("ODBC sources need the pyodbc package, which cannot be imported "
            f"({text.splitlines()[0] if text else 'not installed'}): pip install pyodbc")
