"""What normalization raises. The layer imports nothing from ``connectors``, so it has a
small tree of its own::

    NormalizationError
    ├── MappingError                 a mapping or cleaner declaration is wrong: fix it
    ├── SourceShapeError             the raw table lacks what the mapping reads: land it
    └── QuarantineThresholdExceeded  too many rows failed: the rows are written, the run
                                     is reported as failed for someone to look at them

None of them carries row values: quarantine tables hold those, where access is controlled.
"""

from __future__ import annotations

from connectors import ConfigurationError, DataContractError, HeadwaterError


class NormalizationError(HeadwaterError):
    """Base of every error raised by normalization."""


class MappingError(NormalizationError, ConfigurationError):
    """A mapping, schema or cleaner declaration is inconsistent; nothing ran."""


class SourceShapeError(NormalizationError, DataContractError):
    """The raw data lacks columns the mapping reads, or has a type it cannot take."""


class QuarantineThresholdExceeded(NormalizationError):
    """More rows went to quarantine than the entity's threshold allows."""

    def __init__(self, entity: str, quarantined: int, total: int, limit: float,
                 top_reasons: str) -> None:
        self.entity, self.quarantined, self.total, self.limit = entity, quarantined, total, limit
        share = quarantined / total if total else 0.0
        super().__init__(
            f"entity {entity!r}: {quarantined:,} of {total:,} rows ({share:.1%}) went to "
            f"quarantine, above the {limit:.1%} allowed; most common reasons: {top_reasons}. "
            f"Inspect quarantine_{entity}, fix the source or the mapping, then reprocess"
        )
