"""Orchestration: pipeline specs as Dagster assets, checks, schedules and sensors.

The only layer that imports dagster; nothing imports it. :func:`build_definitions` turns
one configuration into a code location; :class:`HeadwaterTranslator` names its assets,
groups, owners and metadata, and can be subclassed.
"""

from ._definitions import build_definitions
from ._resources import HeadwaterResource
from ._translator import HeadwaterTranslator

__all__ = ["HeadwaterResource", "HeadwaterTranslator", "build_definitions"]
