"""The ``headwater`` command line.

Exit status: 0 on success, 1 with a one-line reason on failure, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from connectors import (
    ConfigurationError,
    HeadwaterError,
    RedactingFilter,
    redact,
)

if TYPE_CHECKING:
    from normalization import NormalizeResult

    from .cleaning import NormalizationSpec
    from .config import Config
    from .runner import StreamResult
    from .warehouse import Warehouse

# Each command imports what it uses when it runs: `--help` loads no connector, database
# or data-frame library, `run` on a SQL source none of the ODBC, SOAP, normalization or
# Dagster stacks, and the commands past landing load polars, pandera and pydantic
# (about 0.8 s) only for themselves.


def _targets(config: Config, targets: Sequence[str]) -> list[tuple[str, str | None]]:
    """``connector`` or ``connector.stream`` arguments as (connector, stream|None) pairs."""
    if not targets:
        return [(name, None) for name in config.connector_names()]
    chosen = []
    for target in targets:
        connector, _, stream = target.partition(".")
        if connector not in config.connectors:
            known = ", ".join(config.connector_names()) or "(none)"
            raise ConfigurationError(
                f"no connector {connector!r} in {config.origin}; connectors: {known}"
            )
        chosen.append((connector, stream or None))
    return chosen


def cmd_check(config: Config, args: argparse.Namespace) -> int:
    from .config import build_connector

    for name, _ in _targets(config, args.targets):
        with build_connector(name, config.connectors[name]) as connector:
            connector.check()
            where = getattr(connector, "where", "")
            print(f"{name}: ok {where}".rstrip())
    return 0


def cmd_discover(config: Config, args: argparse.Namespace) -> int:
    from .config import build_connector

    for name, only in _targets(config, args.targets):
        with build_connector(name, config.connectors[name]) as connector:
            for stream in connector.discover():
                if only and stream.name != only:
                    continue
                cursor = f", cursor {stream.cursor_field}" if stream.cursor_field else ""
                print(f"{name}.{stream.name} (primary key {', '.join(stream.primary_key)}"
                      f"{cursor})")
                for field in stream.schema or []:
                    print(f"    {field.name}: {field.type}")
    return 0


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    from .config import build_connector
    from .progress import Progress
    from .runner import new_run_id, run_stream
    from .warehouse import open_warehouse

    run_id = new_run_id()
    progress = Progress(sys.stderr)
    total = 0
    with open_warehouse(config.warehouse_url) as warehouse:
        print(f"run {run_id} into {warehouse.url}")
        for name, only in _targets(config, args.targets):
            with build_connector(name, config.connectors[name]) as connector:
                streams = [only] if only else [s.name for s in connector.streams or
                                               connector.discover()]
                for stream in streams:
                    result = run_stream(connector, stream, warehouse, run_id=run_id,
                                        progress=progress)
                    total += result.rows
                    print(_summary(result, warehouse))
    print(f"done: {total:,} rows landed")
    return 0


def _summary(result: StreamResult, warehouse: Warehouse) -> str:
    if not result.rows:
        return f"{result.key}: no new rows ({result.seconds:.1f}s)"
    rate = result.rows / max(result.seconds, 1e-9)
    return (f"{result.key}: {result.rows:,} rows -> {result.table} in {result.seconds:.1f}s "
            f"({rate:,.0f} rows/s; {warehouse.row_count(result.table):,} rows in the table)")


def cmd_state(config: Config, args: argparse.Namespace) -> int:
    from .warehouse import open_warehouse

    with open_warehouse(config.warehouse_url) as warehouse:
        states = warehouse.states()
        if args.action == "show":
            wanted = set(args.targets)
            for key, entry in states.items():
                if wanted and key not in wanted and key.split(".")[0] not in wanted:
                    continue
                print(f"{key}: {entry['state']} (run {entry['run_id']}, {entry['updated_at']})")
            if not states:
                print("no saved state")
            return 0
        if not args.targets:
            raise ConfigurationError("state reset needs targets: connector.stream or connector")
        for target in args.targets:
            keys = [k for k in states if k == target or k.split(".")[0] == target]
            if not keys:
                raise ConfigurationError(f"no saved state for {target!r}")
            for key in keys:
                warehouse.delete_state(key)
                print(f"{key}: state reset; the next run reads from the start")
    return 0


def cmd_estate(config: Config, args: argparse.Namespace) -> int:
    from .demo import build_estate

    build_estate(config, args.orders, args.force)
    return 0


def cmd_demo(config: Config, args: argparse.Namespace) -> int:
    from .demo import build_estate

    build_estate(config, args.orders, force=False)
    args.targets = []
    cmd_run(config, args)
    args.entities, args.quarantined = [], False
    cmd_normalize(config, args)
    cmd_context(config, args)
    return cmd_model(config, args)


def cmd_context(config: Config, args: argparse.Namespace) -> int:
    from .context import ACCOUNT_CONTEXT, build_contexts
    from .runner import new_run_id
    from .warehouse import open_warehouse

    with open_warehouse(config.warehouse_url) as warehouse:
        built = build_contexts(warehouse, ACCOUNT_CONTEXT, new_run_id()).metadata()
    print(f"{ACCOUNT_CONTEXT.table}: {built['contexts']:,} contexts, {built['trimmed']:,} "
          f"trimmed to {built['budget_tokens']:,} tokens, {built['provenance_entries']:,} "
          f"source records ({built['seconds']:.2f}s)")
    return 0


def cmd_model(config: Config, args: argparse.Namespace) -> int:
    from .models import run_model_step
    from .models.estate import account_health_step
    from .runner import new_run_id
    from .warehouse import open_warehouse

    step = account_health_step()
    with open_warehouse(config.warehouse_url) as warehouse:
        ran = run_model_step(warehouse, step, new_run_id()).metadata()
    served = ", ".join(f"{n:,} by {name}" for name, n in ran["served_by"].items()) or "none"
    print(f"{step.output_table}: {ran['rows']:,} answers ({served}), {ran['errors']:,} "
          f"errors, {ran['cache_hits']:,} from cache ({ran['cache_hit_rate']:.0%}), "
          f"{ran['calls']:,} model calls, cost {ran['cost']:.4f}, "
          f"p95 {ran['latency_ms_p95']:.0f} ms")
    return 0


def cmd_normalize(config: Config, args: argparse.Namespace) -> int:
    from .cleaning import clean_all, load_spec
    from .runner import new_run_id
    from .warehouse import open_warehouse

    spec = load_spec(config.normalization)
    run_id = new_run_id()
    with open_warehouse(config.warehouse_url) as warehouse:
        print(f"normalize {run_id} in {warehouse.url}")
        if args.quarantined:
            return _reprocess(warehouse, spec, args.entities, run_id)
        run = clean_all(warehouse, spec, run_id=run_id, entities=args.entities or None,
                        on_result=lambda result: print(_clean_summary(result)))
    if run.parties is not None:
        parties = run.parties
        print(f"{spec.resolution.name}: {parties.parties:,} resolved from "
              f"{parties.crosswalk.num_rows:,} records ({parties.linked_by_key:,} "
              f"linked by key, {parties.linked_by_name:,} by name, "
              f"{parties.ambiguous_names:,} ambiguous names left apart)")
    errors = [r.threshold_error() for r in run.over_threshold]
    for error in errors[1:]:
        print(f"headwater: error: {error}", file=sys.stderr)
    if errors:
        raise errors[0]
    return 0


def _reprocess(warehouse: Warehouse, spec: NormalizationSpec, entities: list[str], run_id: str
               ) -> int:
    """Re-process the quarantined rows of ``entities`` (default: all); the threshold is
    judged on each whole entity afterwards."""
    from normalization import QuarantineThresholdExceeded

    from .cleaning import quarantine_table, quarantined_share, reprocess_quarantined

    for entity in entities or [m.entity for m in spec.mappings]:
        mapping = spec.mapping(entity)
        if quarantine_table(entity) not in warehouse.tables():
            continue
        result = reprocess_quarantined(warehouse, mapping, spec, run_id=run_id)
        print(_clean_summary(result, "re-processed"))
        quarantined, total = quarantined_share(warehouse, mapping)
        if total and quarantined / total > mapping.max_quarantine_share:
            raise QuarantineThresholdExceeded(entity, quarantined, total,
                                              mapping.max_quarantine_share,
                                              result.describe_reasons())
    return 0


def _clean_summary(result: NormalizeResult, verb: str = "raw") -> str:
    superseded = f", {result.superseded_rows:,} superseded" if result.superseded_rows else ""
    line = (f"{result.entity}: {result.raw_rows:,} {verb} -> {result.clean_rows:,} clean, "
            f"{result.quarantined_rows:,} quarantined ({result.quarantine_share:.1%})"
            f"{superseded} in {sum(result.seconds.values()):.2f}s")
    if result.failures:
        line += f"\n    quarantine reasons: {result.describe_reasons(5)}"
    return line


def cmd_lineage(config: Config, args: argparse.Namespace) -> int:
    from normalization import render_lineage

    from .cleaning import load_spec
    from .context import ACCOUNT_CONTEXT
    from .lineage import LineageCatalog, landings_of, render_trace
    from .models.estate import account_health_step

    spec = load_spec(config.normalization)
    catalog = LineageCatalog(spec.mappings, [ACCOUNT_CONTEXT], [account_health_step()],
                             landings_of(config.connectors))
    for target in args.targets or [m.entity for m in spec.mappings]:
        table, column = catalog.resolve(target)
        if column is None:
            print(render_lineage(catalog.columns(table)))
        else:
            print(render_trace(catalog.trace(table, column)))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="headwater", description=__doc__.splitlines()[0])
    top.add_argument("--config", help="config file (default: $HEADWATER_CONFIG, "
                     "./headwater.toml, then the embedded demo)")
    sub = top.add_subparsers(dest="command", required=True)
    for name, fn, text in [
        ("check", cmd_check, "probe connectivity and credentials"),
        ("discover", cmd_discover, "list streams with their columns and types"),
        ("run", cmd_run, "land streams in the warehouse (all by default)"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("targets", nargs="*", metavar="connector[.stream]")
        p.set_defaults(fn=fn)
    state = sub.add_parser("state", help="show or reset saved stream state")
    state.add_argument("action", choices=["show", "reset"])
    state.add_argument("targets", nargs="*", metavar="connector[.stream]")
    state.set_defaults(fn=cmd_state)
    estate = sub.add_parser("estate", help="build the demo legacy estate")
    estate.add_argument("what", choices=["build"])
    estate.add_argument("--orders", type=int, help="orders in the demo ERP")
    estate.add_argument("--force", action="store_true", help="rebuild if it exists")
    estate.set_defaults(fn=cmd_estate)
    demo = sub.add_parser("demo", help="build the demo ERP if needed, land the estate, "
                          "normalize it and run the model step over its contexts")
    demo.add_argument("--orders", type=int, help="orders in the demo ERP")
    demo.set_defaults(fn=cmd_demo)
    normalize = sub.add_parser("normalize", help="clean landed raw tables into entities "
                               "and quarantine (all by default)")
    normalize.add_argument("entities", nargs="*", metavar="entity")
    normalize.add_argument("--quarantined", action="store_true",
                           help="re-process only the rows now in quarantine")
    normalize.set_defaults(fn=cmd_normalize)
    for name, fn, text in [
        ("context", cmd_context, "build context documents from the clean tables"),
        ("model", cmd_model, "run the model steps over their contexts"),
    ]:
        sub.add_parser(name, help=text).set_defaults(fn=fn)
    lineage = sub.add_parser("lineage", help="show where clean columns come from")
    lineage.add_argument("targets", nargs="*", metavar="table[.column]",
                         help="an entity, context or model table, or its asset: order, "
                              "clean/order.total, model/account_health.cited_sources; a "
                              "column is traced back to the source columns")
    lineage.set_defaults(fn=cmd_lineage)
    return top


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=os.environ.get("HEADWATER_LOG_LEVEL", "WARNING"),
                        handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _configure_logging()
    try:
        from ._lean import skip_pandas_probe
        from .config import load_config
        from .demo import serving_estate

        config = load_config(args.config)
        if args.fn in _HOLD_NO_DATA_FRAMES:
            skip_pandas_probe()
        if args.fn not in _USES_SOURCES:
            return args.fn(config, args)
        with serving_estate(config) as served:
            return args.fn(served, args)
    except HeadwaterError as exc:
        print(f"headwater: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("headwater: interrupted; the next run resumes from the last checkpoint",
              file=sys.stderr)
        return 130
    except Exception as exc:
        if _is_normalization_error(exc):
            print(f"headwater: error: {exc}", file=sys.stderr)
            return 1
        if os.environ.get("HEADWATER_DEBUG"):
            traceback.print_exc()
        detail = redact(str(exc).splitlines()[0] if str(exc) else "")
        print(f"headwater: error: {type(exc).__name__}: {detail} "
              "(set HEADWATER_DEBUG=1 for the traceback)", file=sys.stderr)
    return 1


def _is_normalization_error(exc: Exception) -> bool:
    """Whether ``exc`` is one of normalization's own (one line, no traceback); checked
    without importing normalization, which only a command that used it has loaded."""
    normalization = sys.modules.get("normalization")
    return normalization is not None and isinstance(exc, normalization.NormalizationError)


_USES_SOURCES = (cmd_check, cmd_discover, cmd_run, cmd_demo)
_HOLD_NO_DATA_FRAMES = (cmd_check, cmd_discover, cmd_run, cmd_state)

if __name__ == "__main__":
    sys.exit(main())
