"""Thin Celery tasks for the deprovisioning schedule. The database decides; these only run it.

``run_due_deactivations`` is on the beat schedule (console/settings.py, every minute by
default) and also runs when a worker starts, so deactivations that came due while no worker ran
are picked up at once.
"""

import logging

from celery import shared_task
from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@shared_task
def run_due_deactivations() -> None:
    from .deactivation import run_due_deactivations as sweep

    result = sweep()
    if result.total:
        logger.info(
            "deactivation sweep: %d deactivated, %d deferred (legal hold), %d held (guard)",
            result.deactivated,
            result.deferred,
            result.held,
        )


@shared_task
def run_deactivation(row_id: int) -> None:
    """Runs one deactivation if it is due and still pending, else nothing. Deprovisions now
    nudge with ``run_due_deactivations`` instead (one message per few seconds of due times,
    identity/services.py); this stays for messages an earlier version queued."""
    from .deactivation import run_deactivation as run

    run(row_id)


@worker_ready.connect
def sweep_when_a_worker_starts(sender, **kwargs) -> None:
    run_due_deactivations.delay()
