"""When assets run: schedules per source, a new-data sensor, automation.

Raw assets run on their source's cron (``schedule``, ``timezone`` in
``[connectors.<name>]``) or when the source's newest cursor moves (``sensor = true``);
everything downstream follows its upstream by declarative automation.
"""


import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from connectors import HeadwaterError, Stream
from pipelines.config import ConnectorConfig, load_config

from ._translator import HeadwaterTranslator


def _unpartitioned(config: ConnectorConfig, streams: Sequence[Stream],
                   translator: HeadwaterTranslator) -> list[AssetKey]:
    partitioned = config.partitions()
    return [translator.raw_key(config.name, s.name) for s in streams
            if s.name not in partitioned]


def schedules(connectors: Mapping[str, tuple[ConnectorConfig, Sequence[Stream]]],
              translator: HeadwaterTranslator, running: bool = False
              ) -> list[ScheduleDefinition]:
    """A schedule for each source with ``schedule = "<cron>"``, over its streams that are
    not partitioned; the time zone is explicit (``timezone``, default UTC). Schedules
    start stopped, as Dagster's do, unless ``running`` (``[dagster] start_automation``)."""
    found = []
    for name, (config, streams) in connectors.items():
        settings = config.settings
        if not settings.schedule:
            continue
        keys = _unpartitioned(config, streams, translator)
        if not keys:
            raise HeadwaterError(f"connectors.{name}.schedule: the connector has no "
                                 "unpartitioned stream to schedule")
        job = define_asset_job(f"{name}_sync", selection=AssetSelection.assets(*keys),
                               description=f"land every stream of {name}")
        found.append(ScheduleDefinition(
            name=f"{name}_schedule", cron_schedule=settings.schedule, job=job,
            execution_timezone=settings.timezone,
            default_status=DefaultScheduleStatus.RUNNING if running
            else DefaultScheduleStatus.STOPPED,
            description=f"{name} on {settings.schedule} ({settings.timezone})",
        ))
    return found


def new_data_sensors(connectors: Mapping[str, tuple[ConnectorConfig, Sequence[Stream]]],
                     config_path: str | None, translator: HeadwaterTranslator,
                     running: bool = False) -> list[SensorDefinition]:
    """For each source with ``sensor = true``: poll the newest cursor of its streams and
    land the streams whose cursor moved since the last evaluation."""
    found = []
    for name, (config, streams) in connectors.items():
        if not config.settings.sensor:
            continue
        partitioned = config.partitions()
        watched = [s.name for s in streams if s.cursor_field and s.name not in partitioned]
        if not watched:
            raise HeadwaterError(f"connectors.{name}.sensor: the connector has no "
                                 "unpartitioned stream with a cursor to watch")
        found.append(_new_data_sensor(name, watched, config_path, translator, running))
    return found


def _new_data_sensor(name: str, streams: list[str], config_path: str | None,
                     translator: HeadwaterTranslator, running: bool) -> SensorDefinition:
    @sensor(name=f"{name}_new_data", minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.RUNNING if running
            else DefaultSensorStatus.STOPPED,
            target=AssetSelection.assets(*[translator.raw_key(name, s) for s in streams]),
            description=f"lands {name} streams when their newest cursor moves")
    def _sense(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        seen = json.loads(context.cursor) if context.cursor else {}
        try:
            config = load_config(config_path)
            with config.build_connector(name) as connector:
                latest = {s: _text(connector.latest_cursor(s)) for s in streams}
        except HeadwaterError as exc:
            # An unreachable source is a skipped tick with the reason, not a crash: the
            # next tick tries again.
            return SkipReason(f"{name} cannot be read now: {exc}")
        return new_data_requests(name, seen, latest, translator)

    return _sense


def new_data_requests(name: str, seen: Mapping[str, str | None],
                      latest: Mapping[str, str | None],
                      translator: HeadwaterTranslator | None = None
                      ) -> SensorResult | SkipReason:
    """The run to request for the streams whose newest cursor differs from ``seen``."""
    translator = translator or HeadwaterTranslator()
    moved = sorted(s for s, value in latest.items() if value is not None
                   and value != seen.get(s))
    if not moved:
        return SkipReason(f"no new data in {name}")
    return SensorResult(
        run_requests=[RunRequest(run_key=f"{name}:{json.dumps(latest, sort_keys=True)}",
                                 asset_selection=[translator.raw_key(name, s)
                                                  for s in moved])],
        cursor=json.dumps({**seen, **latest}),
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)


def automation_sensor(running: bool = False) -> AutomationConditionSensorDefinition:
    """Runs clean, context and model assets after their upstream data changes; stopped
    until turned on, unless ``running``."""
    return AutomationConditionSensorDefinition(
        "headwater_automation", target=AssetSelection.all(),
        default_status=DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED,
        minimum_interval_seconds=30)
