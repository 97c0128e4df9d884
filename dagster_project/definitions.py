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

import gc

# Loading makes ~100,000 long-lived objects (Dagster, the definitions); collecting them
# over and over while they load doubles the load time of every Dagster process
# (bench/RESULTS.md). Keep the collector off while loading, then freeze what was made.
_collecting = gc.isenabled()
gc.disable()
try:
    from dagster_project import build_definitions

    defs = build_definitions()
finally:
    gc.freeze()
    if _collecting:
        gc.enable()
