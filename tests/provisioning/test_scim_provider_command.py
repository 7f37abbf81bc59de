"""``manage.py scim_provider``: the operators' contract (names, output, JSON shape)."""

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from identity.models import User
from provisioning.credentials import secret_matches
from provisioning.models import Provider, ProviderUser
from synclog.models import ActorKind, AuditLogEntry
from tests.identity.factories import UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_KEYS = ["id", "name", "base_url", "auth", "username", "secret"]


def run(*args: str) -> str:
    out = StringIO()
    call_command("scim_provider", *args, stdout=out)
    return out.getvalue()


def create_json(name: str = "Okta", auth: str = "basic", *extra: str) -> dict:
    output = run("create", "--name", name, "--auth", auth, "--json", *extra)
    return json.loads(output)


def test_create_basic_json_prints_one_object_with_a_secret_that_matches_the_digest():
    output = run("create", "--name", "Okta", "--auth", "basic", "--json")

    assert output.count("\n") == 1, output
    issued = json.loads(output)
    assert list(issued) == CREDENTIAL_KEYS
    provider = Provider.objects.get()
    assert issued["id"] == provider.pk
    assert issued["name"] == "Okta"
    assert issued["base_url"] == provider.base_url
    assert issued["base_url"].endswith(f"/scim/v2/{provider.slug}")
    assert issued["auth"] == "basic"
    assert issued["username"] == provider.credential_username
    assert len(issued["secret"]) >= 43
    assert secret_matches(issued["secret"], provider.secret_digest)
    assert provider.secret_digest != issued["secret"]
    assert issued["secret"] not in provider.secret_digest


def test_create_token_json_has_a_null_username():
    issued = create_json("Entra ID", "token")

    assert list(issued) == CREDENTIAL_KEYS
    assert issued["auth"] == "token"
    assert issued["username"] is None
    provider = Provider.objects.get()
    assert len(issued["secret"]) >= 43
    assert secret_matches(issued["secret"], provider.secret_digest)
    assert provider.secret_digest != issued["secret"]


def test_create_prints_base_url_username_and_secret_once_with_a_warning():
    output = run("create", "--name", "Okta", "--auth", "basic")

    provider = Provider.objects.get()
    assert provider.base_url in output
    assert provider.credential_username in output
    assert "will not be shown again" in output
    secret_line = next(line for line in output.splitlines() if "Password:" in line)
    assert secret_matches(secret_line.split()[-1], provider.secret_digest)


def test_create_token_says_there_is_no_username():
    output = run("create", "--name", "PingOne", "--auth", "token")

    provider = Provider.objects.get()
    assert "(bearer token: no username)" in output
    assert provider.credential_username not in output
    token_line = next(line for line in output.splitlines() if "Token:" in line)
    assert secret_matches(token_line.split()[-1], provider.secret_digest)


def test_create_writes_an_audit_row_with_the_command_as_system_actor():
    create_json()

    entry = AuditLogEntry.objects.get()
    assert (entry.actor_kind, entry.actor_label, entry.action, entry.target_label) == (
        ActorKind.SYSTEM,
        "manage.py scim_provider",
        "provider_created",
        "Okta",
    )


def test_create_defaults_to_a_15_minute_deactivation_delay():
    create_json()

    assert Provider.objects.get().deactivation_delay == timedelta(minutes=15)


@pytest.mark.parametrize("text, expected", [("0", timedelta(0)), ("90d", timedelta(days=90))])
def test_create_accepts_a_delay_from_0_to_90_days(text, expected):
    create_json("Okta", "basic", "--deactivation-delay", text)

    assert Provider.objects.get().deactivation_delay == expected


@pytest.mark.parametrize(
    "text, message",
    [("91d", "between 0 (immediate) and 90 days"), ("abc", "30s, 15m, 12h, 90d")],
)
def test_create_rejects_a_bad_delay_and_creates_nothing(text, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run("create", "--name", "Okta", "--auth", "basic", "--deactivation-delay", text)

    assert Provider.objects.count() == 0
    assert AuditLogEntry.objects.count() == 0


def test_create_rejects_a_duplicate_name_in_any_case():
    create_json("Okta")

    with pytest.raises(CommandError, match="already exists"):
        run("create", "--name", "OKTA", "--auth", "token", "--json")

    assert Provider.objects.count() == 1


def test_names_match_in_any_case_in_every_script():
    create_json("Ünïcødé 認証")
    with pytest.raises(CommandError, match="already exists"):
        run("create", "--name", "ÜNÏCØDÉ 認証", "--auth", "token", "--json")
    run("set", "ünïcødé 認証", "--deactivation-delay", "3h")
    assert Provider.objects.get().deactivation_delay.total_seconds() == 3 * 3600


def test_a_name_with_control_characters_is_refused():
    for name in ("Okta\nProd", "Okta\tProd"):
        with pytest.raises(CommandError, match="tabs, line breaks"):
            run("create", "--name", name, "--auth", "token")
    assert Provider.objects.count() == 0


def test_regenerate_issues_a_new_secret_and_the_old_one_stops_matching():
    old = create_json("Okta", "basic")

    new = json.loads(run("regenerate", "Okta", "--json"))

    assert list(new) == CREDENTIAL_KEYS
    assert (new["id"], new["username"], new["base_url"]) == (
        old["id"],
        old["username"],
        old["base_url"],
    )
    provider = Provider.objects.get()
    assert secret_matches(new["secret"], provider.secret_digest)
    assert not secret_matches(old["secret"], provider.secret_digest)
    assert AuditLogEntry.objects.filter(action="credentials_regenerated").count() == 1


def test_regenerate_prints_the_new_secret_once():
    create_json("Entra", "token")

    output = run("regenerate", "entra")

    provider = Provider.objects.get()
    token_line = next(line for line in output.splitlines() if "Token:" in line)
    assert secret_matches(token_line.split()[-1], provider.secret_digest)
    assert "will not be shown again" in output


def test_set_changes_the_delay_and_writes_an_audit_row():
    create_json("Okta")

    output = run("set", "Okta", "--deactivation-delay", "2h")

    assert Provider.objects.get().deactivation_delay == timedelta(hours=2)
    assert "15m → 2h" in output
    entry = AuditLogEntry.objects.get(action="deactivation_delay_changed")
    assert (entry.actor_kind, entry.actor_label, entry.target_label) == (
        ActorKind.SYSTEM,
        "manage.py scim_provider",
        "Okta",
    )


def test_set_to_the_current_delay_changes_nothing_and_writes_no_row():
    create_json("Okta")

    output = run("set", "Okta", "--deactivation-delay", "15m")

    assert "nothing changed" in output
    assert not AuditLogEntry.objects.filter(action="deactivation_delay_changed").exists()


@pytest.mark.parametrize("text", ["91d", "abc", "15"])
def test_set_rejects_a_bad_delay_and_changes_nothing(text):
    create_json("Okta")

    with pytest.raises(CommandError):
        run("set", "Okta", "--deactivation-delay", text)

    assert Provider.objects.get().deactivation_delay == timedelta(minutes=15)
    assert not AuditLogEntry.objects.filter(action="deactivation_delay_changed").exists()


@pytest.mark.parametrize("name", ["okta prod", "OKTA PROD", "okta-prod"])
def test_name_matches_the_display_name_in_any_case_or_the_slug(name):
    create_json("Okta Prod")

    run("set", name, "--deactivation-delay", "1h")

    assert Provider.objects.get().deactivation_delay == timedelta(hours=1)


@pytest.mark.parametrize(
    "args",
    [
        ["set", "nothing", "--deactivation-delay", "1h"],
        ["regenerate", "nothing"],
        ["delete", "nothing", "--yes"],
    ],
)
def test_unknown_name_is_an_error(args):
    create_json("Okta")

    with pytest.raises(CommandError, match="No provider named 'nothing'"):
        run(*args)


def _provisioned_user(provider: Provider) -> User:
    user = UserFactory(username="ada@example.com", external_id="ext-1")
    ProviderUser.objects.create(provider=provider, user=user, external_id="ext-1")
    return user


@pytest.mark.parametrize("flag", ["--yes", "--noinput", "--no-input"])
def test_delete_removes_the_provider_and_keeps_its_users(flag, monkeypatch):
    create_json("Okta")
    user = _provisioned_user(Provider.objects.get())
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked a question"))

    output = run("delete", "Okta", flag)

    assert not Provider.objects.exists()
    assert not ProviderUser.objects.exists()
    assert User.objects.filter(pk=user.pk).exists()
    assert "1 user(s) stay" in output
    assert AuditLogEntry.objects.filter(action="provider_deleted", target_label="Okta").exists()


def test_delete_without_yes_asks_for_the_name_and_deletes_when_it_matches(monkeypatch):
    create_json("Okta")
    prompts = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "Okta")

    run("delete", "okta")

    assert prompts == ["Type the provider name to confirm: "]
    assert not Provider.objects.exists()


@pytest.mark.parametrize("typed", ["Okt", "", "yes"])
def test_delete_keeps_the_provider_when_the_typed_name_does_not_match(typed, monkeypatch):
    create_json("Okta")
    monkeypatch.setattr("builtins.input", lambda prompt: typed)

    with pytest.raises(CommandError, match="Not deleted"):
        run("delete", "Okta")

    assert Provider.objects.count() == 1
    assert not AuditLogEntry.objects.filter(action="provider_deleted").exists()


def test_list_shows_providers_and_user_counts_but_never_secrets_or_digests():
    basic = create_json("Okta", "basic", "--deactivation-delay", "90d")
    token = create_json("Entra", "token")
    _provisioned_user(Provider.objects.get(name="Okta"))

    table = run("list")
    as_json = run("list", "--json")

    for output in (table, as_json):
        for provider in Provider.objects.all():
            assert provider.secret_digest not in output
        assert basic["secret"] not in output
        assert token["secret"] not in output
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "SLUG", "AUTH", "BASE", "URL", "DELAY", "USERS"]
    assert lines[1].split() == ["Entra", "entra", "token", token["base_url"], "15m", "0"]
    assert lines[2].split() == ["Okta", "okta", "basic", basic["base_url"], "90d", "1"]
    assert json.loads(as_json) == [
        {
            "id": token["id"],
            "name": "Entra",
            "slug": "entra",
            "auth": "token",
            "base_url": token["base_url"],
            "deactivation_delay": "15m",
            "users": 0,
        },
        {
            "id": basic["id"],
            "name": "Okta",
            "slug": "okta",
            "auth": "basic",
            "base_url": basic["base_url"],
            "deactivation_delay": "90d",
            "users": 1,
        },
    ]


def test_list_with_no_providers_says_so():
    assert run("list") == "No providers.\n"
    assert json.loads(run("list", "--json")) == []


def test_json_is_the_only_thing_on_stdout_when_run_from_the_shell(tmp_path):
    # Through a real process: nothing else (warnings, logging, colours) may reach stdout.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["GATEHOUSE_VAR_DIR"] = str(tmp_path)

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    unmigrated = manage("scim_provider", "list", "--json")
    assert unmigrated.returncode != 0 and unmigrated.stdout == ""
    assert unmigrated.stderr.strip().splitlines() == [
        "CommandError: The database cannot be used (no such table: provisioning_provider). "
        "Check DATABASE_URL, and run 'manage.py migrate' (make run does) before adding providers."
    ]
    assert manage("migrate", "-v0").returncode == 0
    created = manage("scim_provider", "create", "--name", "Okta", "--auth", "basic", "--json")
    rejected = manage(
        "scim_provider",
        "create",
        "--name",
        "X",
        "--auth",
        "basic",
        "--json",
        "--deactivation-delay",
        "91d",
    )

    assert created.returncode == 0, created.stderr
    assert list(json.loads(created.stdout)) == CREDENTIAL_KEYS
    assert created.stdout.count("\n") == 1
    assert rejected.returncode != 0
    assert rejected.stdout == ""
    assert "90 days" in rejected.stderr


@pytest.mark.django_db(transaction=True)
def test_providers_created_at_once_get_one_name_in_any_case_and_distinct_slugs():
    from django.db import connection

    from provisioning.services import ProviderError, create_provider
    from synclog.record import Actor

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions (SQLite's writers take turns)")
    names = ["racex", "RACEX", "Racex", "racex!", "racex?", "racex."]
    barrier = threading.Barrier(len(names))
    outcomes = {}

    def create(name):
        barrier.wait()
        try:
            create_provider(name=name, auth_type="token", actor=Actor.system("test"))
            outcomes[name] = "created"
        except ProviderError:
            outcomes[name] = "refused"
        except Exception as exc:  # an IntegrityError escaped: the defect this guards
            outcomes[name] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["created"] * 4 + ["refused"] * 2, outcomes
    slugs = list(Provider.objects.values_list("slug", flat=True))
    assert len(slugs) == len(set(slugs)) == 4
