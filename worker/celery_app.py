"""The Celery application: Redis broker, a ``training`` queue and a CPU ``solve`` queue.

Training tasks are long: workers take one message at a time (``prefetch 1``), acknowledge it only
after the task ends (late acks; a message whose worker died is redelivered), and Redis waits
``visibility_timeout`` before redelivering an unacknowledged message. No result backend: the job row
in the database holds every result and state. Start one worker process per GPU on ``training``
(``taskgrouper worker --queues training``) and any number on ``solve``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from service.logs import configure_logging
from service.settings import Settings, get_settings

RUN_JOB = "taskgrouper.run_job"
SOLVE_GROUPINGS = "taskgrouper.solve_groupings"
RUN_TRIAL = "taskgrouper.run_trial"
SOLVE_STUDY_ANSWERS = "taskgrouper.solve_study_answers"


def create_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings.broker_url`` with the routing and reliability options above."""
    app = Celery("taskgrouper", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
        task_default_queue=settings.training_queue,
        task_routes={
            RUN_JOB: {"queue": settings.training_queue},
            SOLVE_GROUPINGS: {"queue": settings.solve_queue},
            RUN_TRIAL: {"queue": settings.training_queue},
            SOLVE_STUDY_ANSWERS: {"queue": settings.solve_queue},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
    )
    return app


#: the application ``celery -A worker.celery_app`` and ``taskgrouper worker`` run
app = create_celery(get_settings())


@signals.setup_logging.connect
def _configure_logging(loglevel: Any = None, **_: Any) -> None:
    """The workers log as the API does (``service.logs``: JSON lines by default); connecting this
    signal also keeps Celery from installing its own handlers. ``--loglevel`` wins over the setting."""
    settings = get_settings()
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
    configure_logging(settings.log_format, str(level or settings.log_level).upper())
