from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from synclog import record
from synclog.models import AuditLogEntry, RejectedRequest, SyncChange, SyncLogEntry
from synclog.record import Actor
from synclog.retention import purge_expired
from synclog.tasks import purge_expired_sync_log

pytestmark = pytest.mark.django_db


def _row(label: str):
    record.sync_change(
        actor=Actor.system(), user_id=1, user_label=label, change=SyncChange.USER_ADDED
    )
    record.rejected_request(
        provider_id=1, provider_label="Okta", method="POST", path="/x", status=400
    )
    record.audit(actor=Actor.system(), action="test", target_label=label)


def test_purge_removes_sync_rows_older_than_90_days_and_keeps_the_rest(settings):
    settings.GATEHOUSE_SYNC_LOG_RETENTION_DAYS = 90
    now = timezone.now()
    with time_machine.travel(now - timedelta(days=91), tick=False):
        _row("old@example.com")
    with time_machine.travel(now - timedelta(days=89), tick=False):
        _row("recent@example.com")
    assert purge_expired(now=now) == 2
    assert list(SyncLogEntry.objects.values_list("user_label", flat=True)) == ["recent@example.com"]
    assert RejectedRequest.objects.count() == 1
    assert AuditLogEntry.objects.count() == 2  # the audit log is never purged


def test_purge_task_is_idempotent():
    with time_machine.travel(timezone.now() - timedelta(days=200), tick=False):
        _row("old@example.com")
    assert purge_expired_sync_log() == 2
    assert purge_expired_sync_log() == 0
