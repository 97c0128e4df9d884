"""``"package.module:NAME"`` references to a user's Python objects, and loading them.

A reference resolves with the configuration file's folder importable, so a package
beside ``headwater.toml`` needs no installation. User modules are imported with
``PYARROW_IGNORE_TIMEZONE`` preserved: pandera sets it on import, and pyarrow would then
drop the offset of every aware datetime in the process (see ``normalization._pandera``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from connectors import ConfigurationError

_TIMEZONE_VARIABLE = "PYARROW_IGNORE_TIMEZONE"


@contextlib.contextmanager
def importable(folder: Path | None) -> Iterator[None]:
    """``folder`` on ``sys.path`` (first) while the block runs, if it is not already."""
    entry = str(folder.resolve()) if folder is not None else None
    added = entry is not None and entry not in sys.path
    if added:
        sys.path.insert(0, entry)  # type: ignore[arg-type]
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)  # type: ignore[arg-type]


def import_module(name: str, folder: Path | None, where: str) -> ModuleType:
    """Import ``name`` with ``folder`` importable; a :class:`ConfigurationError` naming
    ``where`` (the key that refers to it) if it cannot be."""
    was_set = _TIMEZONE_VARIABLE in os.environ
    try:
        with importable(folder):
            return importlib.import_module(name)
    except ImportError as exc:
        hint = f" (the folder {str(folder)!r} is importable)" if folder else ""
        raise ConfigurationError(f"{where}: cannot import {name!r}: {exc}{hint}") from None
    except Exception as exc:  # a user module that fails while importing
        raise ConfigurationError(f"{where}: importing {name!r} failed: "
                                 f"{type(exc).__name__}: {exc}") from None
    finally:
        if not was_set:
            os.environ.pop(_TIMEZONE_VARIABLE, None)


def load_reference(reference: str, folder: Path | None, where: str) -> Any:
    """The object named ``"package.module:NAME"`` (``NAME`` may be dotted)."""
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise ConfigurationError(f"{where}: {reference!r} must name an object as "
                                 "\"package.module:NAME\"")
    value: Any = import_module(module_name, folder, where)
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            known = sorted(n for n in dir(value) if not n.startswith("_"))
            raise ConfigurationError(f"{where}: {module_name!r} has no {attribute!r}; it "
                                     f"defines {known[:20]}") from None
    return value
