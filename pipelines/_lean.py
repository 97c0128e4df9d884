"""Start-up of commands that hold no data frames: pyarrow without pandas.

pyarrow asks, on its first conversion of a Python list, whether the list is a pandas
object, and imports pandas to find out (about 0.2 s and 40 MB). A ``run``, ``check``,
``discover`` or ``state`` process holds no pandas objects, so :func:`skip_pandas_probe`
answers that first question with pandas blocked. pyarrow remembers "no pandas" for the
question alone: a conversion that needs pandas (``to_pandas``, ``Table.from_pandas``)
still imports it, after which pyarrow treats pandas objects as usual.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from typing import Any


class _BlockPandas:
    """A meta-path finder under which ``import pandas`` fails."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not needed by this command")
        return None


def skip_pandas_probe() -> None:
    """Let pyarrow's pandas probe run once with pandas blocked, unless pandas is loaded."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    blocker = _BlockPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(blocker)
