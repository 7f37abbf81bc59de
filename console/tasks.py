from celery import shared_task


@shared_task(ignore_result=False)
def ping() -> str:
    """Round-trip check: a caller that gets "pong" back knows a worker consumes the broker."""
    return "pong"
