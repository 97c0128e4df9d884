"""The configuration's typed models: what each key means, its type and default.

Every table refuses keys it does not know (the error names the key path and the closest
valid key). Connectors are a union on ``kind`` (``sql`` by default); a connector named
by ``class`` is checked against the settings of the kind it subclasses plus the
arguments of its own ``__init__`` (see :mod:`._connectors`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)


class Strict(BaseModel):
    """A table of the configuration: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- collaborators --------------------------------------------------------------------------


class RetrySpec(Strict):
    """``retry = { max_attempts = 5, base_delay = 0.5, max_delay = 30 }``."""

    max_attempts: int = Field(5, ge=1)
    base_delay: float = Field(0.5, ge=0)
    max_delay: float = Field(30.0, ge=0)


class RateLimitSpec(Strict):
    """``rate_limit = { requests = 10, per_seconds = 1 }``: proactive, per source."""

    requests: int = Field(ge=1)
    per_seconds: float = Field(1.0, gt=0)


class OAuth2Spec(Strict):
    kind: Literal["oauth2"]
    token_url: str
    client_id: str
    client_secret: str | None = None
    private_key_file: str | None = None
    method: Literal["client_secret_basic", "client_secret_post", "private_key_jwt"] = \
        "client_secret_basic"
    scope: str | None = None
    leeway: float = 30.0


class APIKeySpec(Strict):
    kind: Literal["api_key"]
    key: str
    header: str = "X-API-Key"
    query_param: str | None = None


class BasicAuthSpec(Strict):
    kind: Literal["basic"]
    username: str
    password: str


class BearerSpec(Strict):
    kind: Literal["bearer"]
    token: str


AuthSpec = Annotated[OAuth2Spec | APIKeySpec | BasicAuthSpec | BearerSpec,
                     Field(discriminator="kind")]
PAGINATOR_KINDS = ("page_number", "offset", "cursor", "next_url", "link_header")


class PaginatorSpec(BaseModel):
    """``paginator = { kind = "cursor", ... }``; the other keys are the paginator's own
    (checked against its class when the connector is built)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["page_number", "offset", "cursor", "next_url", "link_header"]

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PartitionSpec(Strict):
    """How a stream's backfills are split: by day of its cursor (``kind = "daily"``,
    ``start``), or by ranges of a key column (``kind = "key_range"``, ``key``, and
    ``count`` ranges between the key's lowest and highest value or explicit split
    ``bounds``), for tables without a usable time column."""

    kind: Literal["daily", "key_range"] = "daily"
    start: dt.date | None = None
    key: str | None = None
    count: int | None = Field(None, ge=1, le=10_000)
    bounds: list[Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> PartitionSpec:
        if self.kind == "daily" and self.start is None:
            raise ValueError("partition = \"daily\" needs partition_start = \"YYYY-MM-DD\"")
        if self.kind == "key_range":
            if not self.key:
                raise ValueError("partition = \"key_range\" needs partition_key = \"<column>\"")
            if (self.count is None) == (self.bounds is None):
                raise ValueError("partition = \"key_range\" needs either partitions = <count> "
                                 "or partition_bounds = [<split values>, ...]")
            if self.bounds is not None and (not self.bounds or sorted(self.bounds)
                                            != self.bounds or len(set(self.bounds))
                                            != len(self.bounds)):
                raise ValueError("partition_bounds must be distinct values in increasing order")
        return self


# -- streams --------------------------------------------------------------------------------


class IncrementalFields(Strict):
    """The incremental vocabulary every stream kind shares."""

    cursor: str | None = None
    lag_seconds: float | None = Field(None, ge=0)
    start: Any = None
    end: Any = None
    on_missing_cursor: Literal["include", "skip", "fail"] = "include"
    primary_key: list[str] = []
    partition: Literal["daily", "key_range"] | None = None
    partition_start: dt.date | None = None
    # What the warehouse keeps as the source changes: deleted rows and schema drift.
    deletes: Literal["hard", "soft", "keep"] | None = None
    reconcile_deletes: Literal["hard", "soft"] | None = None
    schema_contract: Literal["evolve", "freeze", "discard_columns", "discard_rows"] = "evolve"

    @field_validator("deletes")
    @classmethod
    def _deletes_on_full_refresh(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("cursor"):
            raise ValueError("deletes applies to full-refresh streams (no cursor); an "
                             "incremental stream finds deleted rows with reconcile_deletes = "
                             "\"hard\" | \"soft\" and headwater reconcile")
        return value

    @field_validator("reconcile_deletes")
    @classmethod
    def _reconcile_incremental(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not info.data.get("cursor"):
            raise ValueError("reconcile_deletes applies to incremental streams (with a "
                             "cursor); a full-refresh stream removes rows no longer at the "
                             "source at every run (deletes = \"hard\" | \"soft\" | \"keep\")")
        return value
    partition_key: str | None = None
    partitions: int | None = Field(None, ge=1, le=10_000)
    partition_bounds: list[Any] | None = None

    @model_validator(mode="after")
    def _partition(self) -> IncrementalFields:
        if self.partition:
            self.partition_spec()  # complete, or a one-line error naming what is missing
        if self.partition == "daily" and not self.cursor:
            raise ValueError("a daily-partitioned stream needs a cursor to read by window")
        return self

    def partition_spec(self) -> PartitionSpec | None:
        """The stream's ``partition*`` keys as one :class:`PartitionSpec`."""
        if not self.partition:
            return None
        return PartitionSpec(kind=self.partition, start=self.partition_start,
                             key=self.partition_key, count=self.partitions,
                             bounds=self.partition_bounds)


class SQLStreamSpec(IncrementalFields):
    """``[[connectors.<name>.streams]]`` of a SQL or ODBC connector."""

    name: str | None = None
    table: str | None = None
    db_schema: str | None = Field(None, alias="schema")
    query: str | None = None
    column_types: dict[str, str] = {}

    @model_validator(mode="after")
    def _table_or_query(self) -> SQLStreamSpec:
        if (self.table is None) == (self.query is None):
            raise ValueError("give either table = \"...\" or query = \"SELECT ...\"")
        if self.query is not None and not self.name:
            raise ValueError("a query stream needs name = \"...\"")
        return self


class PagedStreamFields(IncrementalFields):
    """Bounds a REST or SOAP stream may set for itself (default: its connector's)."""

    max_pages: int | None = Field(None, ge=1)
    max_response_bytes: int | None = Field(None, ge=1)
    # Declared types of the records' fields ({ id = "int64", total = "decimal(12,2)",
    # updated_at = "timestamptz" }); undeclared fields are inferred from the records.
    columns: dict[str, str] = {}

    @field_validator("reconcile_deletes")
    @classmethod
    def _keys_alone(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("a REST or SOAP source cannot list its keys alone, so its "
                             "deletes cannot be reconciled; read the stream without a cursor "
                             "(a full refresh removes the rows no longer at the source)")
        return value


class RESTStreamSpec(PagedStreamFields):
    name: str
    path: str
    record_path: str = ""
    params: dict[str, Any] = {}
    since_param: str | None = None
    nested: Literal["flatten", "json"] = "flatten"
    paginator: PaginatorSpec | None = None


class SOAPStreamSpec(PagedStreamFields):
    name: str
    operation: str
    arguments: dict[str, Any] = {}
    record_path: str = ""
    since_arg: str | None = None
    nested: Literal["flatten", "json"] = "flatten"
    explode: str | None = None
    explode_keys: dict[str, str] = {}
    paginator: PaginatorSpec | None = None


# -- connectors -----------------------------------------------------------------------------


class Orchestration(Strict):
    """Keys of every ``[connectors.<name>]`` that the orchestrator reads."""

    schedule: str | None = None
    timezone: str = "UTC"
    sensor: bool = False
    freshness_hours: float = Field(24.0, gt=0)
    owners: list[str] = []
    tags: dict[str, str] = {}
    description: str | None = None
    partitions: dict[str, PartitionSpec] = {}
    max_concurrent_reads: int | None = Field(None, ge=1)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a cron expression of five fields "
                             "(\"0 * * * *\" is hourly)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name (\"Europe/Berlin\", "
                             "\"UTC\")") from None
        return value


class RelationalSettings(Orchestration):
    db_schema: str | None = Field(None, alias="schema")
    chunk_size: int = Field(122_880, ge=1)  # connectors.sql DEFAULT_CHUNK_ROWS
    batch_size: int = Field(50_000, ge=1)
    retry: RetrySpec = RetrySpec()
    fast_path: bool | Literal["auto"] = "auto"
    streams: list[SQLStreamSpec] = []


class SQLConnectorSpec(RelationalSettings):
    """``kind = "sql"``: any SQLAlchemy dialect."""

    kind: Literal["sql"] = "sql"
    url: str


class ODBCConnectorSpec(RelationalSettings):
    """``kind = "odbc"``: any ODBC driver."""

    kind: Literal["odbc"]
    connection_string: str
    dialect: str | None = None
    literal_sql: bool | None = None
    max_text_size: int = Field(2**20, ge=1)
    max_binary_size: int = Field(2**20, ge=1)
    login_timeout: int = Field(10, ge=0)
    query_timeout: int = Field(0, ge=0)


class HTTPSettings(Orchestration):
    """What REST and SOAP connectors share: one HTTP policy, bounded reads."""

    auth: AuthSpec | None = None
    max_elapsed: float = Field(300.0, gt=0)
    max_pages: int = Field(100_000, ge=1)
    max_response_bytes: int | None = Field(32 * 2**20, ge=1)
    rate_limit: RateLimitSpec | None = None
    batch_size: int = Field(10_000, ge=1)
    retry: RetrySpec = RetrySpec()


class RESTConnectorSpec(HTTPSettings):
    """``kind = "rest"``: a JSON API."""

    kind: Literal["rest"]
    base_url: str
    timeout: float = Field(60.0, gt=0)
    deadline: float = Field(120.0, gt=0)
    headers: dict[str, str] = {}
    streams: list[RESTStreamSpec] = []


class SOAPConnectorSpec(HTTPSettings):
    """``kind = "soap"``: the operations of a WSDL."""

    kind: Literal["soap"]
    wsdl: str
    username: str | None = None
    password: str | None = None
    digest: bool = True
    timeout: float = Field(30.0, gt=0)
    operation_timeout: float = Field(60.0, gt=0)
    allowed_imports: list[str] = []
    endpoint: str | None = None
    streams: list[SOAPStreamSpec] = []


KIND_SPECS: dict[str, type[Orchestration]] = {
    "sql": SQLConnectorSpec, "odbc": ODBCConnectorSpec, "rest": RESTConnectorSpec,
    "soap": SOAPConnectorSpec,
}
STREAM_SPECS: dict[str, type[IncrementalFields]] = {
    "sql": SQLStreamSpec, "odbc": SQLStreamSpec, "rest": RESTStreamSpec,
    "soap": SOAPStreamSpec,
}


# -- the rest of the file -------------------------------------------------------------------


class WarehouseSpec(Strict):
    """``[warehouse] url = "duckdb:///path.duckdb"`` or ``postgresql://...``."""

    url: str


class DagsterSettings(Strict):
    """``[dagster]``: where Dagster runs the steps of a run (docs/deploy.md).

    ``executor = "auto"`` (the default) runs steps in-process on a DuckDB warehouse (one
    writer) and in parallel processes on PostgreSQL; ``"celery"`` hands each step to
    Celery workers on ``broker`` (``amqp://...`` for RabbitMQ, ``redis://...``), with
    ``backend`` for results, on the broker's ``queue`` (give each deployment that shares a
    broker a queue of its own); ``"k8s"`` runs each step as a Kubernetes job, ``k8s`` holding
    the job executor's own settings (namespace, image pull policy, secrets, ...).
    Schedules and sensors start stopped, as Dagster's do (turn them on in the UI), unless
    ``start_automation = true``.
    """

    start_automation: bool = False
    executor: Literal["auto", "in_process", "multiprocess", "celery", "k8s"] = "auto"
    broker: str | None = None
    backend: str = "rpc://"
    queue: str = Field("dagster", pattern=r"^[A-Za-z0-9_.-]+$")
    max_concurrent: int | None = Field(None, ge=1)
    k8s: dict[str, Any] = {}

    @model_validator(mode="after")
    def _broker(self) -> DagsterSettings:
        if self.executor == "celery" and not self.broker:
            raise ValueError("executor = \"celery\" needs broker = \"amqp://...\" (RabbitMQ) "
                             "or \"redis://...\"")
        if self.broker and not self.broker.startswith(("amqp://", "pyamqp://", "redis://",
                                                        "rediss://")):
            raise ValueError("broker must be an amqp:// (RabbitMQ) or redis:// URL")
        return self


class NormalizationSpecModel(Strict):
    """``[normalization]``: the modules that declare mappings (``MAPPINGS`` and
    optionally ``REFERENCES``, ``REFERENCE_FILES``, ``PARTIES``), in order."""

    mappings: list[str] = []
    reference_files: dict[str, str] | None = None

    @field_validator("mappings", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class RootSpec(Strict):
    entity: str
    key: str
    fields: list[str]
    parties: str | None = None
    where: str | None = None


class ViaSpec(Strict):
    section: str
    on: dict[str, str]


class ThroughPartiesSpec(Strict):
    system: str
    column: str


class SectionSpec(Strict):
    name: str
    entity: str
    key: str
    fields: list[str]
    on: dict[str, str] | None = None
    through_parties: ThroughPartiesSpec | None = None
    via: ViaSpec | None = None
    where: str | None = None
    order_by: list[str] = []


class SummarySpec(Strict):
    name: str
    section: str
    values: dict[str, str]


class ContextDeclaration(Strict):
    """``[contexts.<name>]``: a context declared in TOML, or ``context = "pkg.mod:OBJ"``
    naming a :class:`pipelines.context.ContextSpec` (or a function returning one)."""

    context: str | None = None
    root: RootSpec | None = None
    sections: list[SectionSpec] = []
    summaries: list[SummarySpec] = []
    budget: int = Field(1000, ge=1)
    priorities: list[str] = []
    as_of: dt.datetime | str | None = None
    constants: dict[str, Any] = {}
    parties: str = "party"
    description: str = ""

    @model_validator(mode="after")
    def _declared_once(self) -> ContextDeclaration:
        if (self.context is None) == (self.root is None):
            raise ValueError("declare the context with root = {...} and sections, or name a "
                             "Python declaration with context = \"package.module:NAME\"")
        return self


class PromptSpec(Strict):
    version: str
    system: str
    template: str


class OpenAIProviderSpec(Strict):
    kind: Literal["openai"]
    base_url: str
    model: str
    api_key: str | None = None
    name: str = "openai"
    price_in_per_1k: float | None = Field(None, ge=0)
    price_out_per_1k: float | None = Field(None, ge=0)
    strict: bool = True
    max_tokens_param: str = "max_tokens"
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    retry: RetrySpec | None = None
    max_elapsed: float = Field(120.0, gt=0)


class RulesProviderSpec(Strict):
    kind: Literal["rules"]
    function: str
    version: str
    name: str = "local"


ProviderSpec = Annotated[OpenAIProviderSpec | RulesProviderSpec, Field(discriminator="kind")]


class ModelDeclaration(Strict):
    """``[models.<name>]``: a model step declared in TOML, or ``step = "pkg.mod:OBJ"``
    naming a :class:`pipelines.models.ModelStep` (or a function returning one)."""

    step: str | None = None
    context: str | None = None
    output: str | None = None
    prompt: PromptSpec | str | None = None
    providers: list[ProviderSpec] = []
    timeout: float = Field(30.0, gt=0)
    concurrency: int = Field(4, ge=1)
    budget: float | None = Field(None, ge=0)
    max_failure_share: float = Field(0.05, ge=0, le=1)
    citations_field: str = "cited_sources"
    min_citations: int = Field(1, ge=0)
    max_output_tokens: int = Field(512, ge=1)
    max_fallback_share: float = Field(0.05, ge=0, le=1)
    max_repairs: int = Field(1, ge=0)
    run_deadline: float | None = Field(None, gt=0)
    breaker_failures: int = Field(5, ge=1)
    breaker_cooldown: float = Field(30.0, ge=0)
    daily_budget: float | None = Field(None, ge=0)
    rejection_ttl: float = Field(86_400.0, ge=0)
    field_lineage: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _declared_once(self) -> ModelDeclaration:
        if self.step is not None:
            return self
        missing = [k for k in ("context", "output", "prompt") if getattr(self, k) is None]
        if missing or not self.providers:
            needs = [*missing, *([] if self.providers else ["providers"])]
            raise ValueError(f"declare the step's {', '.join(needs)} (or name a Python "
                             "declaration with step = \"package.module:NAME\")")
        return self


class ConfigFile(Strict):
    """The whole file, before connectors are checked kind by kind."""

    warehouse: WarehouseSpec
    dagster: DagsterSettings = DagsterSettings()
    connectors: dict[str, dict[str, Any]] = {}
    normalization: NormalizationSpecModel = NormalizationSpecModel()
    contexts: dict[str, ContextDeclaration] = {}
    models: dict[str, ModelDeclaration] = {}
