"""Context and model-step assets: the last two hops from the clean tables to an answer."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
    multi_asset,
)

from pipelines.context import CONTEXT_SCHEMA, ContextSpec, build_contexts
from pipelines.lineage import answered_by, context_lineage, model_lineage
from pipelines.models import ModelStep, ModelStepFailed, output_schema, run_model_step

from ._assets import EAGER, RETRY_POLICY, failing_fast
from ._metadata import (
    LINEAGE_TABLE,
    arrow_fields,
    column_lineage_value,
    described_schema,
    emit_openlineage,
    lineage_table,
)
from ._resources import HeadwaterResource
from ._translator import HeadwaterTranslator, code_version


def _lineage_metadata(lineage: list[Any], translator: HeadwaterTranslator,
                      schema: Any) -> dict[str, Any]:
    """Column lineage (Dagster's and the readable table) and the column schema, each
    column described by how it is made."""
    described = {i.column: i.transform for i in lineage}
    return {"dagster/column_schema": described_schema(schema, described),
            "dagster/column_lineage": column_lineage_value(lineage, translator),
            LINEAGE_TABLE: lineage_table(lineage, translator)}


def context_asset(spec: ContextSpec, warehouse: str, translator: HeadwaterTranslator
                  ) -> AssetsDefinition:
    """``context_<name>``: one document per root record, with provenance, after the
    tables its column lineage names."""
    lineage = context_lineage(spec)
    shown = _lineage_metadata(lineage, translator, CONTEXT_SCHEMA)
    inputs = dict.fromkeys(table for item in lineage for table, _ in item.sources)
    about = spec.description or f"one document per {spec.root.entity}"

    @asset(key=translator.asset_key(spec.table),
           deps=[translator.asset_key(t) for t in inputs], group_name="context",
           kinds={"polars", warehouse}, code_version=code_version(repr(spec)),
           automation_condition=EAGER, metadata=shown,
           description=f"{about}: context documents of {spec.budget} tokens at most, with "
                       "provenance")
    def _context(context: AssetExecutionContext, headwater: HeadwaterResource
                 ) -> MaterializeResult:
        with failing_fast(), headwater.warehouse() as store:
            built = build_contexts(store, spec, context.run.run_id)
            emit_openlineage(context.run.run_id, store.url, spec.table,
                             arrow_fields(CONTEXT_SCHEMA), lineage)
        figures = built.metadata()
        return MaterializeResult(metadata={
            **shown, "dagster/row_count": figures["contexts"],
            **{name: value for name, value in figures.items() if value is not None}})

    return _context


def model_assets(step: ModelStep, warehouse: str, translator: HeadwaterTranslator
                 ) -> AssetsDefinition:
    """``model_<step>`` and ``model_errors_<step>``: answers with cost, latency and
    provenance, and the contexts no provider could answer."""
    output_key = translator.asset_key(step.output_table)
    errors_key = translator.asset_key(step.errors_table)
    context_key = translator.asset_key(step.context)
    lineage = model_lineage(step)
    shown = _lineage_metadata(lineage, translator, output_schema(step))
    kinds = {"openai" if any(p.paid for p in step.providers) else "python", warehouse}
    version = code_version(step.name, step.prompt.version, step.fingerprint,
                           [p.label for p in step.providers])

    @multi_asset(
        name=step.output_table,
        specs=[AssetSpec(output_key, deps=[context_key], group_name="models", kinds=kinds,
                         code_version=version, automation_condition=EAGER, metadata=shown,
                         description=f"{step.output.__name__} per context: "
                                     f"{answered_by(step)}, with the sources it cites"),
               AssetSpec(errors_key, deps=[context_key], group_name="models", kinds=kinds,
                         code_version=version, automation_condition=EAGER,
                         description="contexts no provider could answer, with the reason")],
        check_specs=[AssetCheckSpec(
            "fallback_share", asset=output_key, blocking=True,
            description=f"at most {step.max_fallback_share:.0%} of the contexts fell back "
                        f"from the first provider and at most {step.max_failure_share:.0%} "
                        "failed; otherwise the last good output stays in place")],
        retry_policy=RETRY_POLICY,
    )
    def _model(context: AssetExecutionContext, headwater: HeadwaterResource) -> Iterator[Any]:
        try:
            with failing_fast(), headwater.warehouse() as store:
                ran = run_model_step(store, step, context.run.run_id)
                emit_openlineage(context.run.run_id, store.url, step.output_table,
                                 arrow_fields(output_schema(step)), lineage)
                explained = explanations_table(store, step, headwater.config)
        except ModelStepFailed as exc:
            # The output table was left as it was: report the check, not a materialization.
            context.log.error(str(exc))
            if exc.run is not None:
                yield _check(exc.run, output_key, passed=False)
            raise Failure(description=str(exc), allow_retries=False) from exc
        yield from _results(ran, output_key, errors_key, {**shown, **explained})
        yield _check(ran, output_key, passed=True)

    return _model


EXPLAINED = "answers explained (sample)"
_EXPLAINED_SCHEMA = TableSchema(columns=[
    TableColumn("answer", "string", description="context: the answer's first fields"),
    TableColumn("cites", "string", description="a source record the answer cites"),
    TableColumn("record", "string", description="where that record is, and its system"),
    TableColumn("values used", "string", description="the fields the model was shown"),
    TableColumn("from source", "string", description="each value's source column"),
])


def explanations_table(store: Any, step: ModelStep, config: Any) -> dict[str, Any]:
    """The first answers with the source rows they cite, as a table the UI renders:
    ``headwater explain`` for each of them."""
    from pipelines.explain import SAMPLE_ANSWERS, Explainer
    from pipelines.lineage import catalog_of

    contexts = {spec.table: spec for spec in config.context_specs()}
    explainer = Explainer(store, step, catalog_of(config), contexts.get(step.context))
    rows = []
    for context_id in explainer.context_ids(SAMPLE_ANSWERS):
        explanation = explainer.explain(context_id)
        short = [f"{k}={v}" for k, v in explanation.answer.items()
                 if k != step.citations_field and len(str(v)) <= 30][:2]
        answer = f"{context_id}: {', '.join(short)}" if short else context_id
        for index, cited in enumerate(explanation.cited):
            rows.append(TableRecord({
                "answer": answer if index == 0 else "〃", "cites": cited.source_id,
                "record": f"{cited.table} key {cited.key} ({cited.system}.{cited.stream})",
                "values used": "; ".join(f"{k}={v}" for k, v in cited.values.items()),
                "from source": "; ".join(f"{k} ← {p.rsplit(' ← ', 1)[-1]}"
                                         for k, p in cited.paths.items() if p)}))
    return {EXPLAINED: MetadataValue.table(rows, schema=_EXPLAINED_SCHEMA)}


def _check(ran: Any, output_key: Any, *, passed: bool) -> AssetCheckResult:
    reasons = ", ".join(f"{reason} ({n})" for reason, n in ran.top_reasons()) or "none"
    return AssetCheckResult(
        asset_key=output_key, check_name="fallback_share", passed=passed,
        metadata={"fallback share": MetadataValue.float(round(ran.fallback_share, 4)),
                  "failure share": MetadataValue.float(round(ran.failure_share, 4)),
                  "top reasons": reasons})


def _results(ran: Any, output_key: Any, errors_key: Any, shown: dict[str, Any]
             ) -> Iterator[MaterializeResult]:
    figures = ran.metadata()
    flat = {name: (MetadataValue.json(value) if isinstance(value, dict | list) else value)
            for name, value in figures.items() if value is not None}
    yield MaterializeResult(asset_key=output_key, metadata={
        **shown, **flat, "dagster/row_count": figures["rows"]})
    yield MaterializeResult(asset_key=errors_key, metadata={
        "dagster/row_count": figures["errors"], "failure share": figures["failure_share"]})
