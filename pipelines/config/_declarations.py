"""Mappings, contexts and model steps, from their declarations in the configuration.

Each may be declared in TOML or named as a Python object (``"package.module:NAME"``,
an instance or a function returning one). Their modules are imported only when a
command asks for them, so landing never loads polars, pandera or the model stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors import ConfigurationError

from . import _models as m
from ._connectors import retry_policy
from ._references import import_module, load_reference

if TYPE_CHECKING:
    from ..cleaning import NormalizationSpec
    from ..context import ContextSpec
    from ..models import ModelStep


def normalization_spec(section: m.NormalizationSpecModel, folder: Path | None, origin: str
                       ) -> NormalizationSpec:
    """The mappings of every module in ``[normalization] mappings``, in order."""
    from ..cleaning import NormalizationSpec

    mappings: list[Any] = []
    references: dict[str, str] = {}
    files: dict[str, str] = {}
    resolution = None
    for name in section.mappings:
        where = f"{origin}: normalization.mappings"
        module = import_module(name, folder, where)
        declared = getattr(module, "MAPPINGS", None)
        if not declared:
            raise ConfigurationError(f"{where}: {name!r} defines no MAPPINGS (a list of "
                                     "EntityMapping)")
        mappings += list(declared)
        references.update(getattr(module, "REFERENCES", {}))
        base = Path(module.__file__).parent if getattr(module, "__file__", None) else folder
        for ref, location in dict(getattr(module, "REFERENCE_FILES", {})).items():
            files[ref] = _located(location, base)
        if getattr(module, "PARTIES", None) is not None:
            if resolution is not None:
                raise ConfigurationError(f"{where}: two modules declare PARTIES; one party "
                                         "resolution per configuration")
            resolution = module.PARTIES
    if section.reference_files is not None:
        files = {ref: _located(location, folder)
                 for ref, location in section.reference_files.items()}
    entities = [mapping.entity for mapping in mappings]
    twice = sorted({e for e in entities if entities.count(e) > 1})
    if twice:
        raise ConfigurationError(f"{origin}: normalization.mappings declare {twice} twice")
    return NormalizationSpec(tuple(mappings), references, files, resolution)


def _located(location: str, base: Path | None) -> str:
    """A reference file's path: as given if absolute, else beside ``base``."""
    path = Path(location)
    if path.is_absolute() or base is None:
        return str(path)
    return str(base / path)


def _named(reference: str, folder: Path | None, where: str, kind: type) -> Any:
    value = load_reference(reference, folder, where)
    if callable(value) and not isinstance(value, kind):
        value = value()
    if not isinstance(value, kind):
        raise ConfigurationError(f"{where}: {reference!r} is a {type(value).__name__}, not a "
                                 f"{kind.__name__} (or a function returning one)")
    return value


def context_spec(name: str, declared: m.ContextDeclaration, folder: Path | None,
                 origin: str) -> ContextSpec:
    from ..context import ContextSpec, Root, Section, Summary

    where = f"{origin}: contexts.{name}"
    if declared.context is not None:
        spec = _named(declared.context, folder, f"{where}.context", ContextSpec)
        if spec.name != name:
            raise ConfigurationError(f"{where}: {declared.context!r} declares context "
                                     f"{spec.name!r}; name the table [contexts.{spec.name}]")
        return spec
    assert declared.root is not None
    root = declared.root
    sections = []
    for section in declared.sections:
        sections.append(Section(
            name=section.name, entity=section.entity, key=section.key,
            fields=tuple(section.fields), on=section.on,
            through_parties=(section.through_parties.system, section.through_parties.column)
            if section.through_parties else None,
            via=(section.via.section, section.via.on) if section.via else None,
            where=section.where, order_by=tuple(section.order_by)))
    try:
        return ContextSpec(
            name=name, root=Root(root.entity, root.key, tuple(root.fields), root.parties,
                                 root.where),
            sections=tuple(sections),
            summaries=tuple(Summary(s.name, s.section, s.values) for s in declared.summaries),
            budget=declared.budget, priorities=tuple(declared.priorities),
            as_of=declared.as_of, constants=declared.constants, parties=declared.parties,
            description=declared.description)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{origin}: {exc}") from None


def model_step(name: str, declared: m.ModelDeclaration, folder: Path | None, origin: str
               ) -> ModelStep:
    from ..context import context_table
    from ..models import LocalRules, ModelStep, OpenAICompatible, Price, PriceTable, Prompt

    where = f"{origin}: models.{name}"
    if declared.step is not None:
        step = _named(declared.step, folder, f"{where}.step", ModelStep)
        if step.name != name:
            raise ConfigurationError(f"{where}: {declared.step!r} declares step {step.name!r}; "
                                     f"name the table [models.{step.name}]")
        return step
    import pydantic

    assert declared.output is not None and declared.prompt is not None
    output = load_reference(declared.output, folder, f"{where}.output")
    if not (isinstance(output, type) and issubclass(output, pydantic.BaseModel)):
        raise ConfigurationError(f"{where}.output: {declared.output!r} is not a pydantic "
                                 "model class")
    if isinstance(declared.prompt, str):
        prompt = _named(declared.prompt, folder, f"{where}.prompt", Prompt)
    else:
        prompt = Prompt(declared.prompt.version, declared.prompt.system,
                        declared.prompt.template)
    providers: list[Any] = []
    prices: dict[str, Any] = {}
    for index, spec in enumerate(declared.providers):
        at = f"{where}.providers[{index}]"
        if isinstance(spec, m.OpenAIProviderSpec):
            options: dict[str, Any] = {"retry": retry_policy(spec.retry)} if spec.retry else {}
            provider = OpenAICompatible(spec.base_url, spec.model, spec.api_key, name=spec.name,
                                        strict=spec.strict,
                                        max_tokens_param=spec.max_tokens_param,
                                        rpm=spec.rpm, tpm=spec.tpm,
                                        max_elapsed=spec.max_elapsed, **options)
            if spec.price_in_per_1k is not None or spec.price_out_per_1k is not None:
                prices[provider.label] = Price(spec.price_in_per_1k or 0.0,
                                               spec.price_out_per_1k or 0.0)
        else:
            rules = load_reference(spec.function, folder, f"{at}.function")
            if not callable(rules):
                raise ConfigurationError(f"{at}.function: {spec.function!r} is not callable")
            provider = LocalRules(rules, version=spec.version, name=spec.name)
        providers.append(provider)
    try:
        return ModelStep(
            name=name, context=context_table(declared.context or ""), output=output,
            prompt=prompt, providers=tuple(providers), timeout=declared.timeout,
            concurrency=declared.concurrency, budget=declared.budget,
            max_failure_share=declared.max_failure_share, prices=PriceTable(prices),
            citations_field=declared.citations_field, min_citations=declared.min_citations,
            max_output_tokens=declared.max_output_tokens,
            max_fallback_share=declared.max_fallback_share, max_repairs=declared.max_repairs,
            run_deadline=declared.run_deadline, breaker_failures=declared.breaker_failures,
            breaker_cooldown=declared.breaker_cooldown, daily_budget=declared.daily_budget,
            rejection_ttl=declared.rejection_ttl,
            field_lineage={k: tuple(v) for k, v in declared.field_lineage.items()})
    except ConfigurationError as exc:
        raise ConfigurationError(f"{origin}: {exc}") from None
