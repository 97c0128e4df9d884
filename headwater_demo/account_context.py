"""The demo's account context, as ``demo.toml`` declares it (``[contexts.account]``)."""

from __future__ import annotations

import functools

from pipelines.config import EMBEDDED_ORIGIN, embedded_config_text, read_config
from pipelines.context import ContextSpec, context_table

ACCOUNT_CONTEXT_TABLE = context_table("account")


@functools.cache
def account_context() -> ContextSpec:
    """The ``account`` context of the embedded demo configuration."""
    config = read_config(embedded_config_text(), EMBEDDED_ORIGIN, None)
    return next(spec for spec in config.context_specs() if spec.name == "account")
