"""The Celery app: delivery settings that keep flowrun's promises, and the task that runs a data row.

``acks_late`` with ``reject_on_worker_lost``: a task is acknowledged only after it ran, so a worker
killed mid-task leaves it to be delivered again (at once when a pool process dies; after the
broker's ``visibility_timeout`` when the whole worker is gone). ``worker_prefetch_multiplier`` 1:
a worker holds no more tasks than it runs. JSON only, both ways: no pickle from the broker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from celery import Celery

from flowrun._models._secret import SecretSource
from flowrun.celery._ledger import DEFAULT_TTL_S
from flowrun.celery._worker import WorkerSettings, run_row, state_for

__all__ = ["RUN_ROW_TASK", "create_app"]

RUN_ROW_TASK = "flowrun.run_row"
DEFAULT_VISIBILITY_TIMEOUT_S = 3600


def create_app(broker: str, *, backend: str | None = None, aliases: str | os.PathLike[str] | None = None,
               secrets: SecretSource | Mapping[str, SecretSource] | None = None,
               visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
               record_ttl_s: int = DEFAULT_TTL_S, limits_namespace: str = "default") -> Celery:
    """A Celery app for flowrun workers and dispatchers.

    ``broker`` is a Redis URL (``redis://host:6379/0``); the result backend and the completed-step
    records use the same Redis unless ``backend`` names another. ``aliases`` and ``secrets`` are the
    worker's own (default ``$FLOWRUN_ALIASES`` or ``./aliases``); a task never carries them.
    ``visibility_timeout_s`` must exceed the longest data row: a task unacknowledged for longer is
    delivered again (the completed-step records keep that from sending a step twice).
    Workers share the aliases' ``rate_limit`` and ``concurrency_limit`` through that same Redis,
    under ``limits_namespace`` (workers of other apps on the same Redis name another).
    """
    app = Celery("flowrun", broker=broker, backend=backend or broker, set_as_current=False)
    # Live workers look for tasks of vanished ones this often (kombu's default is 10 s).
    transport = {"visibility_timeout": visibility_timeout_s,
                 "unacked_restore_interval": min(10.0, max(1.0, visibility_timeout_s / 2))}
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"], result_accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        broker_transport_options=transport, result_backend_transport_options=transport,
        result_extended=False,  # the backend keeps results only, never a task's arguments
        result_expires=record_ttl_s, broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False, task_default_queue="flowrun",
    )
    settings = WorkerSettings(aliases=aliases, secrets=secrets, record_ttl_s=record_ttl_s,
                              limits_namespace=limits_namespace)
    records_url = backend or broker

    @app.task(name=RUN_ROW_TASK, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def run_row_task(bundle: dict[str, Any], inputs: str, run_id: str, row: int, iteration: int | None = None,
                     env: str | None = None, bodies: bool = False) -> str:
        return run_row(state_for(id(app), settings, records_url), bundle=bundle, inputs=inputs, run_id=run_id,
                       row=row, iteration=iteration, env=env, bodies=bodies)

    return app
