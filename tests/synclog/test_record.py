"""synclog/record.py: the rows a change's history writes, on either database."""

from datetime import UTC, datetime

import pytest

from synclog import record
from synclog.models import SyncChange, SyncLogEntry

pytestmark = pytest.mark.django_db

COLUMNS = (
    "created_at", "provider_id", "provider_label", "user_id", "user_label", "change_type",
    "attribute", "old_value", "new_value", "request_id",
)  # fmt: skip


def test_a_change_s_rows_are_written_whole_in_order_with_what_they_share(monkeypatch):
    # On PostgreSQL one INSERT … SELECT over unnest() of the columns that differ per row;
    # elsewhere a VALUES row each. Either way the same rows.
    moment = datetime(2026, 11, 27, 1, 2, 3, 456789, tzinfo=UTC)
    monkeypatch.setattr(record.timezone, "now", lambda: moment)
    actor = record.Actor(
        kind="provider", label="okta_1@x", provider_id=None, provider_label="Okta", request_id="r1"
    )
    changes = [
        (SyncChange.USER_ADDED, "userName", None, "ünï@example.com"),
        (SyncChange.ATTRIBUTE_UPDATED, "title", 'Old, "quoted" {braces}', ""),
        (SyncChange.ATTRIBUTE_UPDATED, "active", True, False),
        (SyncChange.ATTRIBUTE_UPDATED, "manager", 12, None),
    ]
    record.sync_changes(actor=actor, user_id=None, user_label="u@example.com", changes=changes)
    record.sync_changes(actor=actor, user_id=7, user_label="v@example.com", changes=[])
    rows = list(SyncLogEntry.objects.order_by("pk").values_list(*COLUMNS))
    shared = (moment, None, "Okta", None, "u@example.com")
    assert rows == [
        (*shared, "user_added", "userName", "", "ünï@example.com", "r1"),
        (*shared, "attribute_updated", "title", 'Old, "quoted" {braces}', "", "r1"),
        (*shared, "attribute_updated", "active", "true", "false", "r1"),
        (*shared, "attribute_updated", "manager", "12", "", "r1"),
    ]
