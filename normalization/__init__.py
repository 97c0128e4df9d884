"""Normalization: Pandera schemas, legacy-quirk cleaning, quarantine, column lineage.

Imports no connectors and no dagster.
"""
