"""PRODUCT.md "User status": a blocked or deactivated user can never sign in, and an open
session stops on its next request. And the operator commands."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from identity import services
from identity.models import UserStatus
from tests.identity.conftest import START
from tests.identity.factories import UserFactory, provider_actor, provisioned_user

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"
DELAY = timedelta(minutes=15)


@pytest.mark.parametrize("delay", [DELAY, timedelta(0)], ids=["blocked", "deactivated"])
def test_an_open_session_stops_working_once_the_user_is_deprovisioned(client, provider, delay):
    user = provisioned_user(provider, is_superuser=True)
    assert client.login(username=user.username, password=PASSWORD)
    assert client.get(reverse("console:home")).status_code == 200

    services.deprovision(user, actor=provider_actor(provider), delay=delay)

    response = client.get(reverse("console:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:login"))


def test_a_deprovisioned_user_cannot_sign_in(client, provider):
    user = provisioned_user(provider, is_superuser=True)
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    assert not client.login(username=user.username, password=PASSWORD)
    response = client.post(
        reverse("console:login"), {"username": user.username, "password": PASSWORD}
    )
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_an_unblocked_user_can_sign_in_again(client, provider):
    user = provisioned_user(provider, is_superuser=True)
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)
    services.apply_provider_active(user, active=True, actor=provider_actor(provider), delay=DELAY)
    assert client.login(username=user.username, password=PASSWORD)


def test_user_status_shows_the_pending_deactivation_and_its_due_time(clock, provider, capsys):
    user = provisioned_user(provider, username="ada@example.com")
    services.deprovision(user, actor=provider_actor(provider), delay=DELAY)

    call_command("user_status", "ADA@example.com")

    out = capsys.readouterr().out
    assert "status:      blocked" in out
    assert "legal hold:  no" in out
    assert "deactivation: pending" in out
    assert f"due:       {(START + DELAY).isoformat()}" in out
    assert provider.name in out


def test_user_status_of_an_active_user(capsys):
    UserFactory(username="grace@example.com")
    call_command("user_status", "grace@example.com")
    out = capsys.readouterr().out
    assert "status:      active" in out
    assert "deactivation: none scheduled" in out


def test_user_status_of_an_unknown_user_is_an_error():
    with pytest.raises(CommandError, match="No user named"):
        call_command("user_status", "nobody@example.com")


def test_legal_hold_command_places_and_releases(clock, provider, capsys):
    user = provisioned_user(provider, username="ada@example.com")
    call_command("legal_hold", "ada@example.com", "--place")
    user.refresh_from_db()
    assert user.legal_hold
    services.deprovision(user, actor=provider_actor(provider), delay=timedelta(0))
    call_command("user_status", "ada@example.com")
    assert "deferred" in capsys.readouterr().out

    call_command("legal_hold", "ada@example.com", "--release")

    user.refresh_from_db()
    assert (user.legal_hold, user.status) == (False, UserStatus.DEACTIVATED)
    assert "status deactivated" in capsys.readouterr().out


def test_legal_hold_command_needs_place_or_release():
    UserFactory(username="ada@example.com")
    with pytest.raises(CommandError):
        call_command("legal_hold", "ada@example.com")
