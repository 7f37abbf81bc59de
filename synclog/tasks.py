from celery import shared_task


@shared_task
def purge_expired_sync_log() -> int:
    """Daily (beat): idempotent, safe to run twice."""
    from .retention import purge_expired

    return purge_expired()
