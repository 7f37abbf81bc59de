"""Sync-log retention (PRODUCT.md: entries older than the retention period, 90 days by
default, are purged daily). Audit-log entries are never purged by the product."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import RejectedRequest, SyncLogEntry

BATCH = 5000


def purge_expired(*, now=None, days: int | None = None) -> int:
    """Delete sync-log and rejected-request rows older than the retention period, in
    batches (short transactions beside live provisioning). Returns how many went."""
    days = settings.GATEHOUSE_SYNC_LOG_RETENTION_DAYS if days is None else days
    cutoff = (now or timezone.now()) - timedelta(days=days)
    removed = 0
    for model in (SyncLogEntry, RejectedRequest):
        while True:
            with transaction.atomic():
                ids = list(
                    model.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:BATCH]
                )
                if not ids:
                    break
                removed += model.objects.filter(id__in=ids).delete()[0]
    return removed
