"""The model steps' logger: ``headwater.models``, every record redacted.

The filter sits on the logger itself, so a record is scrubbed before any handler sees
it, whoever configured logging; every module of the package logs through :data:`log`.
"""

from __future__ import annotations

import logging

from connectors import RedactingFilter

log = logging.getLogger("headwater.models")
log.addFilter(RedactingFilter())
