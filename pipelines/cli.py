"""The ``headwater`` command line.

Exit status: 0 on success, 1 with a one-line reason per failure, 2 on usage errors,
130 when interrupted. A command over several connectors or streams goes on past one
that fails and lists the failures at the end.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from connectors import ConfigurationError, HeadwaterError, RedactingFilter, redact

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


class Failures:
    """Failures of a command that goes on past them: printed as they happen, counted
    for the exit status, listed again at the end."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, exc: BaseException) -> None:
        reason = describe_error(exc)
        self.items.append((where, reason))
        print(f"headwater: error: {where}: {reason}", file=sys.stderr, flush=True)

    def status(self, total: int, what: str) -> int:
        """The exit status; with more than one item, a last line listing the failed."""
        if not self.items:
            return 0
        if total > 1:
            listing = "; ".join(where for where, _ in self.items)
            print(f"headwater: {len(self.items)} of {total} {what} failed: {listing}",
                  file=sys.stderr)
        return 1


def debugging() -> bool:
    """Whether ``HEADWATER_DEBUG`` asks for tracebacks (set, and not 0, false or no)."""
    return os.environ.get("HEADWATER_DEBUG", "").strip().lower() not in ("", "0", "false",
                                                                         "no", "off")


def describe_error(exc: BaseException) -> str:
    """One line for a failure: headwater's own errors as they are, others with their
    type. With ``HEADWATER_DEBUG=1`` the traceback of every failure, headwater's own
    included, goes to standard error first, redacted like every other line."""
    debug = debugging()
    if debug:
        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
        sys.stderr.flush()
    if isinstance(exc, HeadwaterError):
        return redact(str(exc))
    detail = redact(str(exc).splitlines()[0] if str(exc) else "")
    hint = "" if debug else " (set HEADWATER_DEBUG=1 for the traceback)"
    return f"{type(exc).__name__}: {detail}{hint}"


def _targets(config: Config, targets: Sequence[str]) -> list[tuple[str, str | None]]:
    """``connector`` or ``connector.stream`` arguments as (connector, stream|None) pairs."""
    if not targets:
        return [(name, None) for name in config.connector_names()]
    chosen = []
    for target in targets:
        connector, _, stream = target.partition(".")
        config.connector(connector)  # names the known ones if unknown
        chosen.append((connector, stream or None))
    return chosen


def cmd_check(config: Config, args: argparse.Namespace) -> int:
    failures = Failures()
    targets = _targets(config, args.targets)
    for name, _ in targets:
        try:
            with config.build_connector(name) as connector:
                connector.check()
                where = getattr(connector, "where", "")
                print(f"{name}: ok {where}".rstrip(), flush=True)
        except (HeadwaterError, OSError) as exc:
            failures.add(name, exc)
    return failures.status(len(targets), "connectors")


def cmd_discover(config: Config, args: argparse.Namespace) -> int:
    failures = Failures()
    targets = _targets(config, args.targets)
    for name, only in targets:
        try:
            with config.build_connector(name) as connector:
                for stream in connector.discover():
                    if only and stream.name != only:
                        continue
                    cursor = f", cursor {stream.cursor_field}" if stream.cursor_field else ""
                    print(f"{name}.{stream.name} (primary key "
                          f"{', '.join(stream.primary_key)}{cursor})")
                    for field in stream.schema or []:
                        print(f"    {field.name}: {field.type}")
        except HeadwaterError as exc:
            failures.add(name, exc)
    return failures.status(len(targets), "connectors")


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    from .progress import Progress
    from .runner import new_run_id, run_stream
    from .warehouse import open_warehouse

    run_id = new_run_id()
    progress = Progress(sys.stderr)
    total, reread, streams_run = 0, 0, 0
    failures = Failures()
    with open_warehouse(config.warehouse_url) as warehouse:
        print(f"run {run_id} into {warehouse.url}", flush=True)
        for name, only in _targets(config, args.targets):
            try:
                with config.build_connector(name) as connector:
                    names = [only] if only else [s.name for s in connector.streams or
                                                 connector.discover()]
                    for stream in names:
                        streams_run += 1
                        try:
                            result = run_stream(connector, stream, warehouse, run_id=run_id,
                                                progress=progress)
                        except HeadwaterError as exc:
                            failures.add(f"{name}.{stream}", exc)
                            continue
                        total += result.new_rows
                        reread += result.reread or 0
                        print(_summary(result, warehouse), flush=True)
            except HeadwaterError as exc:
                streams_run += 1
                failures.add(name, exc)
    margin = f" ({reread:,} re-read within the lag margin)" if reread else ""
    print(f"done: {total:,} rows landed{margin}")
    return failures.status(streams_run, "streams")


def _summary(result: StreamResult, warehouse: Warehouse) -> str:
    reread = (f"{result.reread:,} re-read behind the saved cursor, the lag margin; "
              if result.reread else "")
    if not result.new_rows:
        detail = f"{reread}{result.seconds:.1f}s".replace("; ", ", ")
        line = f"{result.key}: no new rows ({detail})"
    else:
        rate = result.rows / max(result.seconds, 1e-9)
        line = (f"{result.key}: {result.new_rows:,} rows -> {result.table} in "
                f"{result.seconds:.1f}s ({reread}{rate:,.0f} rows/s; "
                f"{warehouse.row_count(result.table):,} rows in the table)")
    return line + "".join(f"\n    {note}" for note in _sync_notes(result))


def _sync_notes(result: StreamResult) -> list[str]:
    """What a run did beside landing rows: deletes, schema changes, dropped values,
    rejected records."""
    done = "removed" if result.deletes == "hard" else "marked with _hw_deleted_at"
    notes = [f"{result.removed:,} rows no longer at the source {done}"] if result.removed \
        else []
    notes += [f"schema: {change}" for change in result.schema_changes]
    notes += [f"new column {name!r} dropped: {values:,} values (schema_contract = "
              "\"discard_columns\")" for name, values in result.discarded.items()]
    if result.rejected:
        notes.append(f"{result.rejected:,} records -> {result.rejects_table} (schema_contract "
                     "= \"discard_rows\")")
    return notes


def cmd_reconcile(config: Config, args: argparse.Namespace) -> int:
    from .reconcile import reconcile_stream
    from .runner import new_run_id
    from .warehouse import open_warehouse

    run_id = new_run_id()
    failures = Failures()
    count = 0
    with open_warehouse(config.warehouse_url) as warehouse:
        for name, only in _targets(config, args.targets):
            try:
                with config.build_connector(name) as connector:
                    names = [only] if only else [s.name for s in connector.streams
                                                 if s.reconcile_deletes]
                    for stream in names:
                        count += 1
                        try:
                            result = reconcile_stream(connector, stream, warehouse,
                                                      run_id=run_id)
                        except HeadwaterError as exc:
                            failures.add(f"{name}.{stream}", exc)
                            continue
                        done = "removed from" if result.deletes == "hard" else "marked in"
                        resumed = " (resumed)" if result.resumed else ""
                        print(f"{result.key}: {result.keys:,} keys scanned{resumed}; "
                              f"{result.removed:,} rows no longer at the source {done} "
                              f"{result.table} ({result.seconds:.1f}s)", flush=True)
            except HeadwaterError as exc:
                count += 1
                failures.add(name, exc)
    if not count:
        print(f"no stream declares reconcile_deletes in {config.origin}: nothing to "
              "reconcile")
    return failures.status(count, "streams")


def cmd_state(config: Config, args: argparse.Namespace) -> int:
    from .warehouse import open_warehouse

    with open_warehouse(config.warehouse_url) as warehouse:
        states = warehouse.states()
        if args.action == "show":
            for key, entry in states.items():
                if args.targets and not any(_belongs(key, t) for t in args.targets):
                    continue
                print(f"{key}: {entry['state']} (run {entry['run_id']}, {entry['updated_at']})")
            if not states:
                print("no saved state")
            return 0
        if not args.targets:
            raise ConfigurationError("state reset needs targets: connector.stream or connector")
        if args.drop:
            return _drop_streams(config, warehouse, args.targets, args.yes)
        for target in args.targets:
            keys = [k for k in states if _belongs(k, target)]
            if not keys:
                raise ConfigurationError(f"no saved state for {target!r}")
            for key in keys:
                warehouse.delete_state(key)
                print(f"{key}: state reset; the next run reads from the start")
    return 0


def _belongs(key: str, target: str) -> bool:
    """Whether state ``key`` is the stream (or connector) ``target``'s: its own, its
    partitions' (``@``) and its bookkeeping's (``#full_read``, ``#reconcile``)."""
    return (key == target or key.startswith((f"{target}@", f"{target}#"))
            or key.split(".")[0] == target)


def _drop_streams(config: Config, warehouse: Warehouse, targets: Sequence[str],
                  confirmed: bool) -> int:
    """``state reset --drop``: each stream's raw table, rejects and state, gone."""
    from .reconcile import keys_table_name
    from .warehouse import raw_table_name, rejects_table_name

    tables, states = set(warehouse.tables()), warehouse.states()
    for target in targets:
        connector, _, stream = target.partition(".")
        if not stream:
            raise ConfigurationError(f"state reset --drop {target!r}: name one stream as "
                                     "connector.stream; --drop rebuilds a stream's table")
        dropped = [raw_table_name(connector, stream), rejects_table_name(connector, stream),
                   keys_table_name(connector, stream)]
        keys = [k for k in states if k == target or k.startswith((f"{target}@", f"{target}#"))]
        if not keys and dropped[0] not in tables:
            raise ConfigurationError(f"state reset --drop {target!r}: no such stream in "
                                     f"{warehouse.url} (no table {dropped[0]}, no state)")
        if not confirmed and not _confirmed(target, dropped[0]):
            raise ConfigurationError(f"state reset --drop {target!r}: not confirmed, nothing "
                                     "dropped (type the stream's name, or pass --yes)")
        for table in dropped:
            if warehouse.drop_table(table):
                print(f"{target}: dropped table {table}")
        for key in keys:
            warehouse.delete_state(key)
            print(f"{target}: dropped state {key}")
        print(f"{target}: the next run lands the stream from the start")
    return 0


def _confirmed(target: str, table: str) -> bool:
    """Whether the user typed the stream's name to confirm (never without a terminal)."""
    if not sys.stdin.isatty():
        return False
    answer = input(f"drop {table} and the state of {target}? type {target} to confirm: ")
    return answer.strip() == target


def cmd_demo(config: Config, args: argparse.Namespace) -> int:
    """Every stage in order; a failed stage stops the ones after it."""
    args.targets, args.entities, args.quarantined, args.names = [], [], False, []
    args.refresh, args.clear_cache = None, None
    for stage in (cmd_run, cmd_normalize, cmd_context, cmd_model):
        status = stage(config, args)
        if status:
            return status
    return 0


def _chosen(declared: dict[str, Any], names: Sequence[str], what: str, origin: str
            ) -> list[Any]:
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ConfigurationError(f"no {what} {unknown[0]!r} in {origin}; {what}s: "
                                 f"{', '.join(declared) or '(none declared)'}")
    return [declared[n] for n in names] if names else list(declared.values())


def cmd_context(config: Config, args: argparse.Namespace) -> int:
    if not config.contexts:
        print(f"no contexts declared in {config.origin}: nothing to build "
              "(declare [contexts.<name>])")
        return 0
    from .context import build_contexts
    from .runner import new_run_id
    from .warehouse import open_warehouse

    specs = {spec.name: spec for spec in config.context_specs()}
    chosen = _chosen(specs, args.names, "context", config.origin)
    failures = Failures()
    with open_warehouse(config.warehouse_url) as warehouse:
        for spec in chosen:
            try:
                built = build_contexts(warehouse, spec, new_run_id(),
                                       full=getattr(args, "full", False)).metadata()
            except HeadwaterError as exc:
                failures.add(f"context {spec.name}", exc)
                continue
            rebuilt = "" if built["mode"] == "full" else \
                f" ({built['rebuilt']:,} rebuilt, {built['removed']:,} removed)"
            print(f"{spec.table}: {built['contexts']:,} contexts{rebuilt}, "
                  f"{built['trimmed']:,} trimmed "
                  f"to {built['budget_tokens']:,} tokens, {built['provenance_entries']:,} "
                  f"source records ({built['seconds']:.2f}s)")
    return failures.status(len(chosen), "contexts")


def cmd_model(config: Config, args: argparse.Namespace) -> int:
    if not config.models:
        print(f"no model steps declared in {config.origin}: nothing to run "
              "(declare [models.<name>])")
        return 0
    from .models import ModelStepFailed, clear_model_cache, run_model_step
    from .runner import new_run_id
    from .warehouse import open_warehouse

    steps = {step.name: step for step in config.model_steps()}
    chosen = _chosen(steps, args.names, "model step", config.origin)
    failures = Failures()
    with open_warehouse(config.warehouse_url) as warehouse:
        for step in chosen:
            if args.clear_cache:
                cleared = clear_model_cache(warehouse, step.name,
                                            rejections_only=args.clear_cache == "rejections")
                print(f"{step.name}: {cleared:,} cached entries cleared")
                continue
            try:
                ran = run_model_step(warehouse, step, new_run_id(),
                                     refresh=args.refresh).metadata()
            except (HeadwaterError, ModelStepFailed) as exc:
                failures.add(f"model {step.name}", exc)
                continue
            served = ", ".join(f"{n:,} by {name}" for name, n in ran["served_by"].items()) \
                or "none"
            print(f"{step.output_table}: {ran['rows']:,} answers ({served}), "
                  f"{ran['errors']:,} errors, {ran['cache_hits']:,} from cache "
                  f"({ran['cache_hit_rate']:.0%}), {ran['calls']:,} model calls, cost "
                  f"{ran['cost']:.4f}, p95 {ran['latency_ms_p95']:.0f} ms")
    return failures.status(len(chosen), "model steps")


def cmd_normalize(config: Config, args: argparse.Namespace) -> int:
    if not config.normalization.mappings:
        print(f"no mappings declared in {config.origin}: nothing to normalize "
              "(declare [normalization] mappings = [\"package.module\"])")
        return 0
    from .cleaning import clean_all
    from .runner import new_run_id
    from .warehouse import open_warehouse

    spec = config.normalization_spec()
    run_id = new_run_id()
    with open_warehouse(config.warehouse_url) as warehouse:
        print(f"normalize {run_id} in {warehouse.url}")
        if args.quarantined:
            return _reprocess(warehouse, spec, args.entities, run_id)
        run = clean_all(warehouse, spec, run_id=run_id, entities=args.entities or None,
                        full=getattr(args, "full", False),
                        on_result=lambda result: print(_clean_summary(result)))
    if run.parties is not None:
        from ._parties import parties_summary

        print(parties_summary(spec.resolution.name, run.parties))  # type: ignore[union-attr]
    for skipped in run.skipped:
        print(f"headwater: warning: {skipped}", file=sys.stderr)
    failures = Failures()
    for result in run.over_threshold:
        failures.add(result.entity, result.threshold_error())  # type: ignore[arg-type]
    return failures.status(len(run.results), "entities")


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
    if getattr(result, "mode", None) == "incremental":
        verb = f"new {verb}"
    line = (f"{result.entity}: {result.raw_rows:,} {verb} -> {result.clean_rows:,} clean, "
            f"{result.quarantined_rows:,} quarantined ({result.quarantine_share:.1%})"
            f"{superseded} in {sum(result.seconds.values()):.2f}s")
    why = getattr(result, "why_full", "")
    if why and why not in ("first run", "asked for"):
        line += f"\n    rebuilt from every landed row: {why}"
    if result.failures:
        line += f"\n    quarantine reasons: {result.describe_reasons(5)}"
    return line


def cmd_lineage(config: Config, args: argparse.Namespace) -> int:
    from normalization import render_lineage

    from .lineage import catalog_of, render_trace

    catalog = catalog_of(config)
    if not catalog.tables:
        print(f"no mappings, contexts or model steps declared in {config.origin}: no lineage "
              "to show")
        return 0
    for target in args.targets or list(catalog.tables):
        table, column = catalog.resolve(target)
        if column is None:
            print(render_lineage(catalog.columns(table)))
        else:
            print(render_trace(catalog.trace(table, column)))
    return 0


def cmd_explain(config: Config, args: argparse.Namespace) -> int:
    from .explain import Explainer, render_explanation
    from .lineage import catalog_of, table_of
    from .warehouse import open_warehouse

    table = table_of(args.answers)
    steps = {step.output_table: step for step in config.model_steps()}
    step = steps.get(table) or steps.get(f"model_{table}")
    if step is None:
        known = ", ".join(f"model/{s.name}" for s in steps.values()) or "(none declared)"
        raise ConfigurationError(f"no model step writes {args.answers!r}; steps: {known}")
    contexts = {spec.table: spec for spec in config.context_specs()}
    with open_warehouse(config.warehouse_url) as warehouse:
        explainer = Explainer(warehouse, step, catalog_of(config), contexts.get(step.context))
        print(render_explanation(explainer.explain(args.key)))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="headwater", description=__doc__.splitlines()[0])
    top.add_argument("--config", help="config file (default: $HEADWATER_CONFIG, "
                     "./headwater.toml, then the embedded demo)")
    top.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY.PATH=VALUE",
                     help="override one setting of the file, e.g. --set "
                          "connectors.erp.chunk_size=5000 (repeatable)")
    sub = top.add_subparsers(dest="command", required=True)
    for name, fn, text in [
        ("check", cmd_check, "probe connectivity and credentials (all connectors by default)"),
        ("discover", cmd_discover, "list streams with their columns and types"),
        ("run", cmd_run, "land streams in the warehouse (all by default)"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("targets", nargs="*", metavar="connector[.stream]")
        p.set_defaults(fn=fn)
    state = sub.add_parser("state", help="show or reset saved stream state")
    state.add_argument("action", choices=["show", "reset"])
    state.add_argument("targets", nargs="*", metavar="connector[.stream]")
    state.add_argument("--drop", action="store_true",
                       help="reset: also drop the stream's raw table (and its rejects), so "
                            "the next run lands it from scratch with the source's types")
    state.add_argument("--yes", action="store_true",
                       help="reset --drop: do not ask to type the stream's name")
    state.set_defaults(fn=cmd_state)
    reconcile = sub.add_parser("reconcile", help="find the rows of incremental streams that "
                               "their source no longer holds (streams that declare "
                               "reconcile_deletes; all by default)")
    reconcile.add_argument("targets", nargs="*", metavar="connector[.stream]")
    reconcile.set_defaults(fn=cmd_reconcile)
    demo = sub.add_parser("demo", help="every stage in order: land, normalize, build the "
                          "contexts and run the model steps (the embedded demo when no "
                          "configuration is given)")
    demo.set_defaults(fn=cmd_demo)
    normalize = sub.add_parser("normalize", help="clean landed raw tables into entities "
                               "and quarantine (all by default)")
    normalize.add_argument("entities", nargs="*", metavar="entity")
    normalize.add_argument("--quarantined", action="store_true",
                           help="re-process only the rows now in quarantine")
    normalize.add_argument("--full", action="store_true",
                           help="rebuild the clean and quarantine tables from every landed "
                                "row and resolve every party again (default: only rows landed "
                                "since the last run, once the clean table exists)")
    normalize.set_defaults(fn=cmd_normalize)
    context = sub.add_parser("context", help="build the declared context documents (all by "
                             "default)")
    context.add_argument("names", nargs="*", metavar="context")
    context.add_argument("--full", action="store_true",
                         help="rebuild every document (default: only those of the roots "
                              "whose records changed since the last build)")
    context.set_defaults(fn=cmd_context)
    model = sub.add_parser("model", help="run the declared model steps over their contexts "
                           "(all by default)")
    model.add_argument("names", nargs="*", metavar="step")
    model.add_argument("--refresh", choices=["all", "fallbacks"], default=None,
                       help="ask the providers again: for every context, or only where the "
                            "cache holds a fallback or a failure")
    model.add_argument("--clear-cache", choices=["all", "rejections"], default=None,
                       help="delete the step's cached answers (or only its remembered "
                            "rejections) instead of running it")
    model.set_defaults(fn=cmd_model)
    lineage = sub.add_parser("lineage", help="show where columns come from")
    lineage.add_argument("targets", nargs="*", metavar="table[.column]",
                         help="an entity, context or model table, or its asset: order, "
                              "clean/order.total, model/account_health.cited_sources; a "
                              "column is traced back to the source columns")
    lineage.set_defaults(fn=cmd_lineage)
    explain = sub.add_parser("explain", help="one model answer with the source rows it "
                             "cites and each value's path back to the source column")
    explain.add_argument("answers", metavar="step", help="the model step, its asset or its "
                         "table: account_health, model/account_health")
    explain.add_argument("key", help="the context the answer is for (its context_id)")
    explain.set_defaults(fn=cmd_explain)
    return top


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=os.environ.get("HEADWATER_LOG_LEVEL", "WARNING"),
                        handlers=[handler])


def _parsed(top: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments; targets after an option (``state reset --drop crm.tickets``) are
    targets too, which argparse alone would refuse."""
    args, rest = top.parse_known_args(argv)
    if rest and isinstance(getattr(args, "targets", None), list) and not any(
            r.startswith("-") for r in rest):
        args.targets += rest
    elif rest:
        top.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parsed(parser(), argv)
    _configure_logging()
    try:
        from ._lean import skip_pandas_probe
        from .config import load_config

        config = load_config(args.config, args.overrides)
        if args.fn in _HOLD_NO_DATA_FRAMES:
            skip_pandas_probe()
        _settle_garbage_collector()
        return args.fn(config, args)
    except HeadwaterError as exc:
        print(f"headwater: error: {describe_error(exc)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("headwater: interrupted; the next run resumes from the last checkpoint",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        print(f"headwater: error: {describe_error(exc)}", file=sys.stderr)
    return 1


_HOLD_NO_DATA_FRAMES: tuple[Callable[..., int], ...] = (cmd_check, cmd_discover, cmd_run,
                                                         cmd_state, cmd_reconcile)

def console() -> None:
    """The ``headwater`` command: :func:`main`, with the garbage collector kept off the
    objects start-up creates. Imports make about 90,000 long-lived objects; collecting
    them again and again while they load, and once more at exit, costs about 0.3 s of
    every command (bench/RESULTS.md). The collector is off until the configuration is
    loaded, then runs as usual for the command itself."""
    gc.disable()
    status = main()
    gc.freeze()  # nothing left to collect that matters: skip the passes at exit
    sys.exit(status)


def _settle_garbage_collector() -> None:
    """Freeze what start-up made and turn the collector back on (after :func:`console`
    turned it off)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


if __name__ == "__main__":
    console()
