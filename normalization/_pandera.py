"""pandera, imported without its process-wide side effect on pyarrow.

pandera 0.35 sets ``PYARROW_IGNORE_TIMEZONE=1`` when it is imported (for pyspark, even when
pyspark is not installed). With it set, pyarrow keeps the wall time of every aware
``datetime`` it converts and drops the offset: 01:52-03:00 lands as 01:52Z, not 04:52Z.
Connectors in the same process (a Dagster code location, the CLI) would store wrong
instants without an error. Import pandera from here: the variable is removed again unless
it was set before.
"""

from __future__ import annotations

import os

_VARIABLE = "PYARROW_IGNORE_TIMEZONE"
_was_set = _VARIABLE in os.environ

import pandera  # noqa: E402
import pandera.errors  # noqa: E402
import pandera.polars  # noqa: E402
from pandera.engines import polars_engine  # noqa: E402

if not _was_set:
    os.environ.pop(_VARIABLE, None)

__all__ = ["pandera", "polars_engine"]
