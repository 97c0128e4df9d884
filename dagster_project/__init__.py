"""Orchestration: pipeline specs as Dagster assets, checks, schedules and sensors.

The only layer that imports dagster; nothing imports it.
"""
