"""Normalization: Pandera schemas, legacy-quirk cleaning, quarantine, column lineage.

Declaring is separate from running. A mapping (:class:`EntityMapping` with :class:`From`,
:class:`Derived` and :class:`Lookup` columns) says how a raw table becomes a clean entity
validated by a Pandera model; :func:`normalize` runs it and returns the clean rows, the
quarantine (one row per failure, with the reason) and counts that reconcile;
:func:`column_lineage` reads the lineage off the mapping. Cleaners are polars
expressions registered by name; add one with the :func:`cleaner` decorator.

Imports no connectors and no dagster.
"""

# First: pandera is imported through this module so that it cannot leave pyarrow
# dropping the offsets of aware datetimes in this process (see _pandera).
from . import _pandera  # noqa: F401
from ._cleaners import CLEANERS, Cleaner, cleaner, find_cleaner
from ._engine import (
    PROVENANCE_COLUMNS,
    QUARANTINE_SCHEMA,
    NormalizeResult,
    as_polars,
    normalize,
    source_key,
)
from ._errors import (
    MappingError,
    NormalizationError,
    QuarantineThresholdExceeded,
    SourceShapeError,
)
from ._lineage import ColumnLineage, column_lineage, render_lineage
from ._mapping import Derived, EntityMapping, From, Lookup, Step
from ._resolve import (
    CROSSWALK_SCHEMA,
    PartySource,
    Resolution,
    ResolvedParties,
    normalize_name,
    resolve,
)

__all__ = [
    "CLEANERS",
    "CROSSWALK_SCHEMA",
    "PROVENANCE_COLUMNS",
    "QUARANTINE_SCHEMA",
    "Cleaner",
    "ColumnLineage",
    "Derived",
    "EntityMapping",
    "From",
    "Lookup",
    "MappingError",
    "NormalizationError",
    "NormalizeResult",
    "PartySource",
    "QuarantineThresholdExceeded",
    "Resolution",
    "ResolvedParties",
    "SourceShapeError",
    "Step",
    "as_polars",
    "cleaner",
    "column_lineage",
    "find_cleaner",
    "normalize",
    "normalize_name",
    "render_lineage",
    "resolve",
    "source_key",
]
