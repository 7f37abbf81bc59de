from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from identity.models import IDENTITY_ADMIN_ROLE, Role, User, UserStatus
from tests.identity.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "database": True, "broker": True}


def test_console_needs_sign_in(client):
    response = client.get(reverse("console:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:login"))


def test_identity_admin_sees_the_console(client):
    admin = UserFactory()
    admin.roles.add(Role.objects.get(name=IDENTITY_ADMIN_ROLE))
    assert client.login(username=admin.username.upper(), password=PASSWORD)
    response = client.get(reverse("console:home"))
    assert response.status_code == 200
    assert b"Identity management" in response.content


def test_user_without_the_role_is_refused(client):
    user = UserFactory()
    client.force_login(user)
    assert client.get(reverse("console:home")).status_code == 403


@pytest.mark.parametrize("status", [UserStatus.BLOCKED, UserStatus.DEACTIVATED])
def test_blocked_or_deactivated_user_cannot_sign_in(client, status):
    user = UserFactory(is_superuser=True, status=status)
    response = client.post(
        reverse("console:login"), {"username": user.username, "password": PASSWORD}
    )
    assert response.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session


def test_ensure_admin_prints_sign_in_once(capsys):
    from django.core.management import call_command

    call_command("ensure_admin")
    first = capsys.readouterr().out
    assert "password:" in first
    call_command("ensure_admin")
    assert "password:" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("base_url", "username"),
    [
        ("https://gatehouse.example.com", "admin@gatehouse.example.com"),
        ("http://127.0.0.1:8000", "admin@gatehouse.local"),  # an IP is no email domain
        ("http://localhost:8000", "admin@gatehouse.local"),
    ],
)
def test_ensure_admin_names_the_administrator_after_the_host(settings, base_url, username, capsys):
    from django.core.management import call_command

    settings.GATEHOUSE_HOST = urlsplit(base_url).hostname
    call_command("ensure_admin")
    assert f"username: {username}" in capsys.readouterr().out
    assert User.objects.get(is_superuser=True).username == username


def test_ensure_admin_refuses_a_username_that_is_not_an_email():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="not an email address"):
        call_command("ensure_admin", "--username", "admin")
    assert not User.objects.filter(is_superuser=True).exists()
