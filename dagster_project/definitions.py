"""The Dagster code location of the configuration in effect. The one wiring file.

Load it with ``dagster dev -m dagster_project.definitions`` (or ``dagster definitions
validate -m dagster_project.definitions``). It reads the same configuration as the
``headwater`` command: ``$HEADWATER_CONFIG``, ``./headwater.toml``, else the embedded demo.
For a code location of your own, call :func:`~dagster_project.build_definitions` with your
file (and, to name things your way, a :class:`~dagster_project.HeadwaterTranslator`
subclass)::

    # my_estate/definitions.py
    from dagster_project import build_definitions

    defs = build_definitions("headwater.toml")
"""

from dagster_project import build_definitions

defs = build_definitions()
