"""When assets run: schedules per source, a new-data sensor, automation.

Raw assets run on their source's cron (``schedule``, ``timezone`` in
``[connectors.<name>]``) or when the source's newest cursor moves (``sensor = true``);
everything downstream follows its upstream by declarative automation.
"""


import datetime as dt
import json
from collections.abc import Mapping
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

from connectors import HeadwaterError
from pipelines.config import build_connector, load_config, stream_name
from pipelines.demo import build_estate

from ._translator import raw_key


def _unpartitioned(name: str, spec: Mapping[str, Any]) -> list[AssetKey]:
    return [raw_key(name, stream_name(s)) for s in spec.get("streams", [])
            if not s.get("partition")]


def schedules(connectors: Mapping[str, Mapping[str, Any]]) -> list[ScheduleDefinition]:
    """A schedule for each source with ``schedule = "<cron>"``; the time zone is explicit
    (``timezone``, default UTC) and the schedule is on from the start."""
    found = []
    for name, spec in connectors.items():
        keys = _unpartitioned(name, spec)
        if not spec.get("schedule") or not keys:
            continue
        job = define_asset_job(f"{name}_sync", selection=AssetSelection.assets(*keys),
                               description=f"land every stream of {name}")
        found.append(ScheduleDefinition(
            name=f"{name}_schedule", cron_schedule=str(spec["schedule"]), job=job,
            execution_timezone=str(spec.get("timezone", "UTC")),
            default_status=DefaultScheduleStatus.RUNNING,
            description=f"{name} on {spec['schedule']} ({spec.get('timezone', 'UTC')})",
        ))
    return found


def new_data_sensors(connectors: Mapping[str, Mapping[str, Any]],
                     config_path: str | None) -> list[SensorDefinition]:
    """For each source with ``sensor = true``: poll the newest cursor of its streams and
    land the streams whose cursor moved since the last evaluation."""
    return [_new_data_sensor(name, spec, config_path) for name, spec in connectors.items()
            if spec.get("sensor")]


def _new_data_sensor(name: str, spec: Mapping[str, Any], config_path: str | None
                     ) -> SensorDefinition:
    streams = [stream_name(s) for s in spec.get("streams", [])
               if s.get("cursor") and not s.get("partition")]

    @sensor(name=f"{name}_new_data", minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.RUNNING,
            target=AssetSelection.assets(*[raw_key(name, s) for s in streams]),
            description=f"lands {name} streams when their newest cursor moves")
    def _sense(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        seen = json.loads(context.cursor) if context.cursor else {}
        config = load_config(config_path)
        try:
            if config.estate.get("erp"):
                build_estate(config, None, force=False)  # the demo's ERP, once
            with build_connector(name, config.connectors[name]) as connector:
                latest = {s: _text(connector.latest_cursor(s)) for s in streams}
        except HeadwaterError as exc:
            # An unreachable source is a skipped tick with the reason, not a crash: the
            # next tick tries again.
            return SkipReason(f"{name} cannot be read now: {exc}")
        return new_data_requests(name, seen, latest)

    return _sense


def new_data_requests(name: str, seen: Mapping[str, str | None],
                      latest: Mapping[str, str | None]) -> SensorResult | SkipReason:
    """The run to request for the streams whose newest cursor differs from ``seen``."""
    moved = sorted(s for s, value in latest.items() if value is not None
                   and value != seen.get(s))
    if not moved:
        return SkipReason(f"no new data in {name}")
    return SensorResult(
        run_requests=[RunRequest(run_key=f"{name}:{json.dumps(latest, sort_keys=True)}",
                                 asset_selection=[raw_key(name, s) for s in moved])],
        cursor=json.dumps({**seen, **latest}),
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)


def automation_sensor() -> AutomationConditionSensorDefinition:
    """Runs clean, context and model assets after their upstream changes; on by default."""
    return AutomationConditionSensorDefinition(
        "headwater_automation", target=AssetSelection.all(),
        default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
