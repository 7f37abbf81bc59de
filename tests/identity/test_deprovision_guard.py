"""The mass-deprovisioning guard (PRODUCT.md "Deprovisioning"): an IdP misconfiguration must
not wipe a company."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from identity import deactivation, services
from identity.models import DeactivationState, DeprovisionGuard, PendingDeactivation, UserStatus
from synclog.models import AuditLogEntry, SyncLogEntry
from synclog.record import Actor
from tests.identity.factories import UserFactory, provider_actor, provisioned_user

pytestmark = pytest.mark.django_db
DELAY = timedelta(minutes=15)


@pytest.fixture
def small_floor(settings):
    """A floor of 3 deprovisions an hour (production default: 500), share 10 %."""
    settings.GATEHOUSE_GUARD_MIN = 3
    settings.GATEHOUSE_GUARD_SHARE = 0.10


def deprovision_all(users, provider, delay=DELAY):
    for user in users:
        services.deprovision(user, actor=provider_actor(provider), delay=delay)


def statuses(users):
    return sorted({u.status for u in type(users[0]).objects.filter(pk__in=[u.pk for u in users])})


def test_guard_trips_past_the_threshold_and_holds_the_deactivations(clock, provider, small_floor):
    users = [provisioned_user(provider) for _ in range(10)]
    deprovision_all(users[:3], provider)
    assert not DeprovisionGuard.objects.exists()  # 3 is the threshold, not past it

    deprovision_all(users[3:4], provider)

    guard = DeprovisionGuard.objects.get()
    assert (guard.state, guard.provider_id, guard.deprovision_count, guard.threshold) == (
        "tripped",
        provider.pk,
        4,
        3,
    )
    assert set(PendingDeactivation.objects.values_list("state", flat=True)) == {"held"}
    assert SyncLogEntry.objects.filter(change_type="deactivation_held").count() == 4
    trip = AuditLogEntry.objects.get(action="deprovision_guard_tripped")
    assert (trip.actor_label, trip.target_label) == (provider.credential_username, provider.name)
    assert trip.detail["deprovisions"] == "4"

    clock.shift(timedelta(days=1))
    assert deactivation.run_due_deactivations().total == 0
    assert statuses(users[:4]) == [UserStatus.BLOCKED]
    assert not SyncLogEntry.objects.filter(change_type="user_deactivated").exists()


def test_users_a_delete_took_out_in_the_window_still_count_in_the_share(
    clock, provider, small_floor
):
    from provisioning import user_sync

    users = [provisioned_user(provider) for _ in range(60)]  # 10 % of 60 = 6 > floor 3
    for user in users[:6]:  # SCIM DELETE: deprovisioned, and no longer linked
        user_sync.remove_user(user.provider_link, actor=provider_actor(provider))
    # 54 linked and 6 removed this hour: still 60 users, 6 deprovisions are not past 10 %.
    assert not DeprovisionGuard.objects.exists()
    deprovision_all(users[6:7], provider)
    assert DeprovisionGuard.objects.get().threshold == 6


def test_one_user_switched_off_and_on_is_one_user_and_none_once_back_on(
    clock, provider, small_floor
):
    flipper, *others = [provisioned_user(provider) for _ in range(10)]
    actor = provider_actor(provider)
    for _ in range(5):  # an IdP flipping active back and forth
        services.deprovision(flipper, actor=actor, delay=DELAY)
        services.apply_provider_active(flipper, active=True, actor=actor, delay=DELAY)
    deprovision_all(others[:3], provider)  # 3 users in force: the threshold, not past it
    assert not DeprovisionGuard.objects.exists()
    services.deprovision(flipper, actor=actor, delay=DELAY)  # off again, and left off
    services.deprovision(flipper, actor=actor, delay=DELAY)  # resent: still one user
    assert DeprovisionGuard.objects.get().deprovision_count == 4


def test_deprovisions_while_tripped_are_held_even_with_delay_zero(clock, provider, small_floor):
    users = [provisioned_user(provider) for _ in range(6)]
    deprovision_all(users[:4], provider)
    deprovision_all(users[4:], provider, delay=timedelta(0))
    assert statuses(users) == [UserStatus.BLOCKED]
    assert PendingDeactivation.objects.filter(state="held").count() == 6


def test_guard_counts_only_the_last_hour(clock, provider, small_floor):
    users = [provisioned_user(provider) for _ in range(8)]
    for user in users:
        deprovision_all([user], provider)
        clock.shift(timedelta(minutes=20))  # 3 per hour at most
    assert not DeprovisionGuard.objects.exists()
    assert deactivation.run_due_deactivations().deactivated == 8


def test_guard_threshold_is_the_share_of_a_large_provider(clock, provider, small_floor):
    users = [provisioned_user(provider) for _ in range(60)]  # 10 % of 60 = 6 > floor 3
    deprovision_all(users[:6], provider)
    assert not DeprovisionGuard.objects.exists()
    deprovision_all(users[6:7], provider)
    assert DeprovisionGuard.objects.get().threshold == 6


def test_guard_is_per_provider(clock, provider, small_floor):
    from tests.identity.factories import ProviderFactory

    other = ProviderFactory()
    deprovision_all([provisioned_user(provider) for _ in range(4)], provider)
    mine = [provisioned_user(other) for _ in range(2)]
    deprovision_all(mine, other)
    clock.shift(DELAY)
    assert deactivation.run_due_deactivations().deactivated == 2
    assert statuses(mine) == [UserStatus.DEACTIVATED]


def test_default_guard_needs_more_than_500_deprovisions(clock, provider):
    deprovision_all([provisioned_user(provider) for _ in range(20)], provider)
    assert not DeprovisionGuard.objects.exists()


def test_confirming_the_guard_runs_the_held_deactivations(clock, provider, small_floor):
    admin = UserFactory(is_superuser=True)
    users = [provisioned_user(provider) for _ in range(5)]
    deprovision_all(users, provider)
    clock.shift(timedelta(hours=2))

    deactivation.confirm_guard(provider.pk, actor=Actor.administrator(admin))
    assert deactivation.run_due_deactivations().deactivated == 5

    assert statuses(users) == [UserStatus.DEACTIVATED]
    assert DeprovisionGuard.objects.get().state == "confirmed"
    assert AuditLogEntry.objects.filter(
        action="deprovision_guard_confirmed", actor_label=admin.username
    ).exists()


def test_a_confirmed_wave_does_not_trip_the_guard_again(clock, provider, small_floor):
    users = [provisioned_user(provider) for _ in range(8)]
    deprovision_all(users[:4], provider)
    deactivation.confirm_guard(provider.pk, actor=Actor.system())
    clock.shift(timedelta(minutes=1))
    deprovision_all(users[4:7], provider)  # 3 more since the confirmation: not past the floor
    assert DeprovisionGuard.objects.filter(state="tripped").count() == 0


def test_cancelling_the_guard_cancels_the_wave_and_unblocks_its_users(clock, provider, small_floor):
    admin = UserFactory(is_superuser=True)
    earlier = provisioned_user(provider)
    deprovision_all([earlier], provider, delay=timedelta(hours=3))
    clock.shift(timedelta(hours=2))
    wave = [provisioned_user(provider) for _ in range(4)]
    deprovision_all(wave, provider)

    deactivation.cancel_guard(provider.pk, actor=Actor.administrator(admin))

    assert statuses(wave) == [UserStatus.ACTIVE]
    assert set(
        PendingDeactivation.objects.filter(user__in=wave).values_list("state", flat=True)
    ) == {DeactivationState.CANCELLED}
    # A deprovision from before the wave was held by the trip, and goes back on the schedule.
    assert PendingDeactivation.objects.get(user=earlier).state == DeactivationState.PENDING
    clock.shift(timedelta(hours=1))
    assert deactivation.run_due_deactivations().deactivated == 1
    assert AuditLogEntry.objects.filter(
        action="deprovision_guard_cancelled", actor_label=admin.username
    ).exists()


def test_active_true_for_a_held_user_cancels_its_deactivation(clock, provider, small_floor):
    users = [provisioned_user(provider) for _ in range(4)]
    deprovision_all(users, provider)
    services.apply_provider_active(
        users[0], active=True, actor=provider_actor(provider), delay=DELAY
    )
    users[0].refresh_from_db()
    assert users[0].status == UserStatus.ACTIVE


def test_deprovision_guard_command_confirms(clock, provider, small_floor, capsys):
    users = [provisioned_user(provider) for _ in range(4)]
    deprovision_all(users, provider)
    call_command("deprovision_guard", provider.name)
    assert "TRIPPED" in capsys.readouterr().out

    clock.shift(DELAY)
    call_command("deprovision_guard", provider.name, "--confirm")

    assert "4 users deactivated now" in capsys.readouterr().out
    assert statuses(users) == [UserStatus.DEACTIVATED]
    assert AuditLogEntry.objects.get(action="deprovision_guard_confirmed").actor_label.endswith(
        "(manage.py)"
    )


def test_deprovision_guard_command_cancels(clock, provider, small_floor, capsys):
    users = [provisioned_user(provider) for _ in range(4)]
    deprovision_all(users, provider)
    call_command("deprovision_guard", provider.slug, "--cancel")
    assert statuses(users) == [UserStatus.ACTIVE]


def test_deprovision_guard_command_refuses_when_not_tripped(provider):
    with pytest.raises(CommandError, match="not tripped"):
        call_command("deprovision_guard", provider.name, "--confirm")
    with pytest.raises(CommandError, match="No provider"):
        call_command("deprovision_guard", "nope", "--confirm")
