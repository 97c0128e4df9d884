"""The Celery app of the workers that run Dagster steps (``[dagster] executor = "celery"``).

Start workers on any machine that reaches the broker, the Dagster instance's database,
the sources and the warehouse, with the same environment as the code location
(``HEADWATER_CONFIG``, ``DAGSTER_HOME`` and the variables the configuration references)::

    celery --app dagster_project.worker worker --queues dagster --concurrency 1

Each worker process runs one step at a time; the steps of every run that uses the Celery
executor are spread over all the workers listening on the broker (docs/deploy.md).
"""

from ._deploy import celery_app

app = celery_app()
