"""Composition: source streams into the warehouse, state, the runner and the CLI.

Imports connectors and normalization; never dagster.
"""
