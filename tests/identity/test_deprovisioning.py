"""Every status transition of PRODUCT.md "Deprovisioning", on a frozen clock."""

import math
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import IntegrityError, transaction

from identity import deactivation, services
from identity.models import DeactivationState, PendingDeactivation, UserStatus
from provisioning import services as provider_services
from provisioning.services import ProviderError
from synclog.models import AuditLogEntry, SyncLogEntry
from synclog.record import Actor
from tests.identity.conftest import START
from tests.identity.factories import UserFactory, provider_actor, provisioned_user

pytestmark = pytest.mark.django_db
DELAY = timedelta(minutes=15)


def sync_rows(user):
    return list(
        SyncLogEntry.objects.filter(user_id=user.pk)
        .order_by("id")
        .values_list("change_type", "attribute", "old_value", "new_value", "provider_label")
    )


def audit_rows(user):
    return list(
        AuditLogEntry.objects.filter(target_label=user.username)
        .order_by("id")
        .values_list("actor_label", "action")
    )


def status_of(user):
    user.refresh_from_db()
    return user.status


def row_of(user):
    return PendingDeactivation.objects.get(user=user)


def test_active_false_blocks_now_and_schedules_deactivation(clock, provider):
    user = provisioned_user(provider)
    actor = provider_actor(provider)

    services.apply_provider_active(user, active=False, actor=actor, delay=DELAY)

    user.refresh_from_db()
    assert user.status == UserStatus.BLOCKED
    assert user.updated_at == START
    row = row_of(user)
    assert (row.state, row.due_at, row.provider_id) == ("pending", START + DELAY, provider.pk)
    assert (row.requested_by, row.request_id) == (provider.credential_username, "req-1")
    due = (START + DELAY).isoformat()
    assert sync_rows(user) == [
        ("user_blocked", "status", "active", "blocked", provider.name),
        ("deactivation_scheduled", "deactivation", "", due, provider.name),
    ]
    assert audit_rows(user) == [(provider.credential_username, "user_deprovisioned")]
    assert SyncLogEntry.objects.filter(request_id="req-1").count() == 2


def test_deactivation_runs_when_the_delay_ends_and_not_before(clock, provider):
    user = provisioned_user(provider)
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)

    clock.shift(DELAY - timedelta(seconds=1))
    assert deactivation.run_due_deactivations().total == 0
    assert status_of(user) == UserStatus.BLOCKED

    clock.shift(timedelta(seconds=1))
    assert deactivation.run_due_deactivations().deactivated == 1
    user.refresh_from_db()
    assert user.status == UserStatus.DEACTIVATED
    assert user.updated_at == START + DELAY
    row = row_of(user)
    assert (row.state, row.finished_at) == (DeactivationState.DONE, START + DELAY)
    assert sync_rows(user)[-1] == (
        "user_deactivated",
        "status",
        "blocked",
        "deactivated",
        provider.name,
    )
    # PRODUCT.md "Audit log": provisioning events name the provider's credential username.
    assert audit_rows(user)[-1] == (provider.credential_username, "user_deactivated")


def test_active_true_within_the_delay_cancels_and_no_deactivation_follows(clock, provider):
    user = provisioned_user(provider)
    actor = provider_actor(provider)
    services.apply_provider_active(user, active=False, actor=actor, delay=DELAY)

    clock.shift(timedelta(minutes=10))
    services.apply_provider_active(user, active=True, actor=actor, delay=DELAY)

    assert status_of(user) == UserStatus.ACTIVE
    assert row_of(user).state == DeactivationState.CANCELLED
    assert [r[0] for r in sync_rows(user)] == [
        "user_blocked",
        "deactivation_scheduled",
        "deactivation_cancelled",
        "user_unblocked",
    ]
    clock.shift(timedelta(hours=2))
    assert deactivation.run_due_deactivations().total == 0
    assert status_of(user) == UserStatus.ACTIVE
    assert not SyncLogEntry.objects.filter(change_type="user_deactivated").exists()


def test_delete_with_delay_zero_deactivates_now(clock, provider):
    user = provisioned_user(provider)

    services.deprovision(user, actor=provider_actor(provider), delay=timedelta(0))

    assert status_of(user) == UserStatus.DEACTIVATED
    assert row_of(user).state == DeactivationState.DONE
    assert sync_rows(user) == [
        ("user_deactivated", "status", "active", "deactivated", provider.name),
    ]
    assert audit_rows(user) == [(provider.credential_username, "user_deactivated")]


def test_resent_active_false_writes_nothing(clock, provider):
    user = provisioned_user(provider)
    actor = provider_actor(provider)
    services.apply_provider_active(user, active=False, actor=actor, delay=DELAY)
    counts = SyncLogEntry.objects.count(), AuditLogEntry.objects.count()

    clock.shift(timedelta(minutes=5))
    services.apply_provider_active(user, active=False, actor=actor, delay=DELAY)

    assert (SyncLogEntry.objects.count(), AuditLogEntry.objects.count()) == counts
    assert row_of(user).due_at == START + DELAY  # the resend does not push the due time out


def test_active_false_for_a_deactivated_user_writes_nothing(clock, provider):
    user = provisioned_user(provider, status=UserStatus.DEACTIVATED)
    services.apply_provider_active(user, active=False, actor=provider_actor(provider), delay=DELAY)
    assert not SyncLogEntry.objects.exists()
    assert not PendingDeactivation.objects.exists()


def test_resent_active_true_for_an_active_user_writes_nothing(clock, provider):
    user = provisioned_user(provider)
    services.apply_provider_active(user, active=True, actor=provider_actor(provider), delay=DELAY)
    assert not SyncLogEntry.objects.exists()
    assert not AuditLogEntry.objects.exists()


def test_legal_hold_defers_deactivation_and_user_stays_blocked(clock, provider):
    admin = UserFactory(is_superuser=True)
    user = provisioned_user(provider)
    services.place_legal_hold(user, actor=Actor.administrator(admin))
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)

    clock.shift(DELAY)
    result = deactivation.run_due_deactivations()

    assert (result.deactivated, result.deferred) == (0, 1)
    assert status_of(user) == UserStatus.BLOCKED
    assert row_of(user).state == DeactivationState.DEFERRED
    assert sync_rows(user)[-1][0] == "deactivation_deferred"
    assert deactivation.run_due_deactivations().total == 0  # deferred is not due again


def test_releasing_the_legal_hold_deactivates_the_deferred_user_at_once(clock, provider):
    admin = Actor.administrator(UserFactory(is_superuser=True))
    user = provisioned_user(provider)
    services.place_legal_hold(user, actor=admin)
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    clock.shift(DELAY)
    deactivation.run_due_deactivations()

    clock.shift(timedelta(days=30))
    services.release_legal_hold(user, actor=admin)

    user.refresh_from_db()
    assert (user.status, user.legal_hold) == (UserStatus.DEACTIVATED, False)
    assert row_of(user).state == DeactivationState.DONE
    assert sync_rows(user)[-1] == (
        "user_deactivated",
        "status",
        "blocked",
        "deactivated",
        provider.name,  # the sync row stays filed under the provider that deprovisioned
    )
    assert [a for _, a in audit_rows(user)][-2:] == ["legal_hold_released", "user_deactivated"]


def test_releasing_a_hold_that_deferred_nothing_changes_only_the_hold(clock, provider):
    admin = Actor.administrator(UserFactory(is_superuser=True))
    user = provisioned_user(provider)
    services.place_legal_hold(user, actor=admin)
    services.release_legal_hold(user, actor=admin)
    user.refresh_from_db()
    assert (user.status, user.legal_hold) == (UserStatus.ACTIVE, False)
    assert not SyncLogEntry.objects.exists()
    assert [a for _, a in audit_rows(user)] == ["legal_hold_placed", "legal_hold_released"]


def test_legal_hold_during_the_delay_defers_the_deactivation(clock, provider):
    admin = Actor.administrator(UserFactory(is_superuser=True))
    user = provisioned_user(provider)
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    clock.shift(timedelta(minutes=5))
    services.place_legal_hold(user, actor=admin)
    clock.shift(DELAY)
    assert deactivation.run_due_deactivations().deferred == 1
    assert status_of(user) == UserStatus.BLOCKED


def test_delay_zero_on_legal_hold_blocks_and_defers(clock, provider):
    user = provisioned_user(provider, legal_hold=True)
    services.deprovision(user, actor=provider_actor(provider), delay=timedelta(0))
    assert status_of(user) == UserStatus.BLOCKED
    assert row_of(user).state == DeactivationState.DEFERRED
    assert [r[0] for r in sync_rows(user)] == ["user_blocked", "deactivation_deferred"]
    assert audit_rows(user) == [(provider.credential_username, "user_deprovisioned")]


def test_active_true_reactivates_a_deactivated_user(clock, provider):
    user = provisioned_user(provider)
    actor = provider_actor(provider)
    services.deprovision(user, actor=actor, delay=timedelta(0))
    clock.shift(timedelta(days=3))

    services.apply_provider_active(user, active=True, actor=actor, delay=DELAY)

    user.refresh_from_db()
    assert user.status == UserStatus.ACTIVE
    assert user.updated_at == START + timedelta(days=3)
    assert sync_rows(user)[-1] == (
        "user_reactivated",
        "status",
        "deactivated",
        "active",
        provider.name,
    )
    assert audit_rows(user)[-1] == (provider.credential_username, "user_reactivated")


def test_deprovision_after_reactivation_schedules_again(clock, provider):
    user = provisioned_user(provider)
    actor = provider_actor(provider)
    services.deprovision(user, actor=actor, delay=timedelta(0))
    services.reactivate(user, actor=actor)
    services.deprovision(user, actor=actor, delay=DELAY)
    assert status_of(user) == UserStatus.BLOCKED
    assert PendingDeactivation.objects.filter(user=user, state="pending").count() == 1


def test_administrator_deactivates_at_once(clock, provider):
    admin = UserFactory(is_superuser=True)
    user = provisioned_user(provider)
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)

    services.deactivate(user, actor=Actor.administrator(admin))

    assert status_of(user) == UserStatus.DEACTIVATED
    assert row_of(user).state == DeactivationState.DONE
    assert audit_rows(user)[-1] == (admin.username, "user_deactivated")
    clock.shift(DELAY)
    assert deactivation.run_due_deactivations().total == 0
    assert SyncLogEntry.objects.filter(change_type="user_deactivated").count() == 1


def test_administrator_cannot_deactivate_a_user_on_legal_hold(clock):
    user = UserFactory(legal_hold=True)
    with pytest.raises(services.LifecycleError, match="legal hold"):
        services.deactivate(user, actor=Actor.system())
    assert status_of(user) == UserStatus.ACTIVE
    assert not AuditLogEntry.objects.exists()


def test_administrator_unblock_cancels_the_pending_deactivation(clock, provider):
    admin = UserFactory(is_superuser=True)
    user = provisioned_user(provider)
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)

    services.unblock(user, actor=Actor.administrator(admin))

    assert status_of(user) == UserStatus.ACTIVE
    assert row_of(user).state == DeactivationState.CANCELLED
    # Filed under the user's provider, so that provider's sync log tells the whole story.
    assert sync_rows(user)[-2:] == [
        ("deactivation_cancelled", "deactivation", (START + DELAY).isoformat(), "cancelled",
         provider.name),
        ("user_unblocked", "status", "blocked", "active", provider.name),
    ]  # fmt: skip
    assert audit_rows(user)[-1] == (admin.username, "deactivation_cancelled")
    clock.shift(DELAY)
    assert deactivation.run_due_deactivations().total == 0


def test_manual_block_and_unblock(clock):
    admin = Actor.administrator(UserFactory(is_superuser=True))
    user = UserFactory()
    services.block(user, actor=admin, reason="lost laptop")
    services.block(user, actor=admin)  # no change, no row
    assert status_of(user) == UserStatus.BLOCKED
    services.unblock(user, actor=admin)
    services.unblock(user, actor=admin)
    assert status_of(user) == UserStatus.ACTIVE
    assert [r[0] for r in sync_rows(user)] == ["user_blocked", "user_unblocked"]
    assert [a for _, a in audit_rows(user)] == ["user_blocked", "user_unblocked"]
    assert not PendingDeactivation.objects.exists()


def test_active_true_does_not_unblock_a_user_blocked_by_hand(clock, provider):
    user = provisioned_user(provider)
    services.block(user, actor=Actor.system())
    services.apply_provider_active(user, active=True, actor=provider_actor(provider), delay=DELAY)
    assert status_of(user) == UserStatus.BLOCKED


def test_active_false_for_a_user_blocked_by_hand_schedules_without_a_second_block(clock, provider):
    user = provisioned_user(provider)
    services.block(user, actor=Actor.system())
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    assert [r[0] for r in sync_rows(user)] == ["user_blocked", "deactivation_scheduled"]
    clock.shift(DELAY)
    assert deactivation.run_due_deactivations().deactivated == 1


def test_blocking_or_unblocking_a_deactivated_user_is_refused(clock):
    user = UserFactory(status=UserStatus.DEACTIVATED)
    for change in (services.block, services.unblock):
        with pytest.raises(services.LifecycleError, match="deactivated"):
            change(user, actor=Actor.system())


@pytest.mark.parametrize(
    "delay", [timedelta(seconds=-1), timedelta(days=90, seconds=1), timedelta(days=365)]
)
def test_delay_outside_0_to_90_days_is_refused(clock, provider, delay):
    user = provisioned_user(provider)
    with pytest.raises(services.LifecycleError, match="between 0 .immediate. and 90 days"):
        services.deprovision(user, actor=provider_actor(provider), delay=delay)
    with pytest.raises(ProviderError, match="between 0 .immediate. and 90 days"):
        provider_services.set_deactivation_delay(provider, delay=delay, actor=Actor.system())
    assert status_of(user) == UserStatus.ACTIVE
    assert not SyncLogEntry.objects.exists()


def test_ninety_days_is_the_longest_delay(clock, provider):
    user = provisioned_user(provider)
    services.deprovision(user, actor=provider_actor(provider), delay=timedelta(days=90))
    assert row_of(user).due_at == START + timedelta(days=90)


def test_changing_the_delay_does_not_move_scheduled_deactivations(clock, provider):
    user = provisioned_user(provider)
    services.deprovision(user, actor=provider_actor(provider), delay=provider.deactivation_delay)
    provider_services.set_deactivation_delay(
        provider, delay=timedelta(minutes=1), actor=Actor.system()
    )
    clock.shift(timedelta(minutes=5))
    assert deactivation.run_due_deactivations().total == 0
    assert row_of(user).due_at == START + DELAY


def test_one_open_deactivation_per_user_in_the_database(clock, provider):
    user = provisioned_user(provider)
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    with pytest.raises(IntegrityError), transaction.atomic():
        PendingDeactivation.objects.create(
            user=user, requested_by_kind="system", requested_by="x", due_at=START
        )


def test_a_due_deactivation_runs_once_however_often_the_sweep_runs(clock, provider):
    users = [provisioned_user(provider) for _ in range(3)]
    for user in users:
        services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    clock.shift(DELAY)
    assert deactivation.run_due_deactivations(batch_size=2).deactivated == 3
    assert deactivation.run_due_deactivations().total == 0
    for user in users:
        assert deactivation.run_deactivation(row_of(user).pk) is None
    assert SyncLogEntry.objects.filter(change_type="user_deactivated").count() == 3


def test_an_eta_message_never_runs_a_deactivation_early(clock, provider):
    user = provisioned_user(provider)
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    row = row_of(user)
    assert deactivation.run_deactivation(row.pk) is None
    clock.shift(DELAY)
    assert deactivation.run_deactivation(row.pk) == DeactivationState.DONE
    assert status_of(user) == UserStatus.DEACTIVATED


@pytest.fixture
def no_nudges_sent():
    services._nudged_buckets.clear()
    yield
    services._nudged_buckets.clear()


def _bucket_end(due):
    seconds = services.ETA_NUDGE_BUCKET_SECONDS
    return datetime.fromtimestamp(math.ceil(due.timestamp() / seconds) * seconds, tz=UTC)


def test_deprovision_queues_a_sweep_at_the_due_time_after_commit(
    clock, provider, django_capture_on_commit_callbacks, no_nudges_sent
):
    user = provisioned_user(provider)
    with mock.patch("identity.tasks.run_due_deactivations.apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    eta = _bucket_end(START + DELAY)
    send.assert_called_once_with(eta=eta, retry=False)
    assert START + DELAY <= eta < START + DELAY + timedelta(seconds=5)


def test_deprovisions_due_in_the_same_few_seconds_share_one_sweep_message(
    clock, provider, django_capture_on_commit_callbacks, no_nudges_sent
):
    users = [provisioned_user(provider) for _ in range(3)]
    with mock.patch("identity.tasks.run_due_deactivations.apply_async") as send:
        for user in users:
            with django_capture_on_commit_callbacks(execute=True):
                services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    assert send.call_count == 1


def test_a_broker_outage_does_not_fail_the_deprovision(
    clock, provider, django_capture_on_commit_callbacks, no_nudges_sent
):
    user = provisioned_user(provider)
    with mock.patch(
        "identity.tasks.run_due_deactivations.apply_async", side_effect=ConnectionError("down")
    ) as send:
        with django_capture_on_commit_callbacks(execute=True):
            services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    assert row_of(user).state == DeactivationState.PENDING  # the sweep will run it
    assert not services._nudged_buckets  # the next deprovision in that bucket tries again
    assert send.call_count == 1


def test_deprovision_rolls_back_with_the_callers_transaction(clock, provider):
    user = provisioned_user(provider)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.apply_provider_active(
            user, active=False, actor=provider_actor(provider), delay=DELAY
        )
        raise RuntimeError("the SCIM request failed later")
    assert status_of(user) == UserStatus.ACTIVE
    assert not PendingDeactivation.objects.exists()
    assert not SyncLogEntry.objects.exists()
    assert not AuditLogEntry.objects.exists()


def test_deprovision_after_the_provider_link_is_gone_is_filed_under_the_provider(clock, provider):
    # SCIM DELETE takes the user out of the provider's view; the schedule still names it.
    user = provisioned_user(provider)
    user.provider_link.delete()
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    clock.shift(DELAY)
    deactivation.run_due_deactivations()
    assert status_of(user) == UserStatus.DEACTIVATED
    assert {r[4] for r in sync_rows(user)} == {provider.name}


def test_a_deleted_provider_leaves_its_scheduled_deactivations_to_run(clock, provider):
    user = provisioned_user(provider)
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    provider_services.delete_provider(provider, actor=Actor.system())
    clock.shift(DELAY)
    assert deactivation.run_due_deactivations().deactivated == 1
    assert sync_rows(user)[-1][4] == provider.name  # the frozen label


def test_deprovision_of_an_active_user_with_an_open_deactivation_changes_nothing(clock, provider):
    # Services never leave an active user with an open deactivation; if a row edited by hand
    # does, the partial unique constraint refuses a second one and nothing is written.
    user = provisioned_user(provider)
    PendingDeactivation.objects.create(
        user=user, provider_id=provider.pk, provider_label=provider.name,
        requested_by_kind="system", requested_by="by hand", created_at=START, due_at=START,
    )  # fmt: skip
    sync_rows, audit_rows = SyncLogEntry.objects.count(), AuditLogEntry.objects.count()
    with transaction.atomic():
        services.apply_provider_active(
            user, active=False, actor=provider_actor(provider), delay=DELAY
        )
    assert PendingDeactivation.objects.filter(user=user).count() == 1
    assert status_of(user) == UserStatus.ACTIVE
    assert (SyncLogEntry.objects.count(), AuditLogEntry.objects.count()) == (sync_rows, audit_rows)
