"""Security: credentials, provider isolation, local users, console pages, concurrency."""

import base64
import json
import threading

import pytest
from django.db import connection

from identity.models import User, UserStatus
from provisioning.models import ProviderUser
from tests.scim.conftest import (
    ScimClient,
    assert_scim_error,
    created,
    new_user,
    patch_ops,
    snapshot,
)

pytestmark = pytest.mark.django_db


def with_header(client: ScimClient, header: str | None) -> ScimClient:
    """A client for the same base URL with another Authorization header (or none)."""
    from rest_framework.test import APIClient

    client.client = APIClient()
    if header is not None:
        client.client.credentials(HTTP_AUTHORIZATION=header)
    return client


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


# --- credentials ----------------------------------------------------------------------------


def test_no_credentials_is_401_with_www_authenticate(scim):
    created(scim, new_user(1))
    before = snapshot()
    anonymous = with_header(scim, None)
    r = anonymous.get("/Users")
    assert_scim_error(r, 401)
    assert r["WWW-Authenticate"].startswith("Bearer")
    assert_scim_error(anonymous.post("/Users", new_user(2)), 401)
    assert snapshot() == before


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-token", "Bearer ", "Token abc", "Basic bm9wZQ==", "Bearer \u00e9\u00e9"],
)
def test_wrong_bearer_credentials_are_401(scim, header):
    before = snapshot()
    client = with_header(scim, header)
    r = client.get("/Users")
    assert_scim_error(r, 401)
    assert r["WWW-Authenticate"] == 'Bearer realm="Gatehouse SCIM"'
    assert_scim_error(client.post("/Users", new_user(2)), 401)
    assert snapshot() == before


def test_wrong_basic_credentials_are_401(scim_basic):
    before = snapshot()
    username = scim_basic.provider.credential_username
    for header in (
        basic(username, "wrong"),
        basic("someone@else", scim_basic.secret),
        "Basic !!!not-base64",
        f"Bearer {scim_basic.secret}",
    ):
        r = with_header(scim_basic, header).get("/Users")
        assert_scim_error(r, 401)
        assert r["WWW-Authenticate"] == 'Basic realm="Gatehouse SCIM"'
    assert snapshot() == before


def test_basic_username_is_case_insensitive(scim_basic):
    username = scim_basic.provider.credential_username.upper()
    r = with_header(scim_basic, basic(username, scim_basic.secret)).get("/Users")
    assert r.status_code == 200, r.content


def test_credential_of_provider_a_at_provider_b_url_is_401(scim, other_scim):
    created(other_scim, new_user(1))
    before = snapshot()
    intruder = with_header(other_scim, f"Bearer {scim.secret}")
    assert_scim_error(intruder.get("/Users"), 401)
    assert_scim_error(intruder.post("/Users", new_user(2)), 401)
    assert snapshot() == before


def test_unknown_provider_url_is_401(scim):
    scim.base = "/scim/v2/no-such-provider"
    assert_scim_error(scim.get("/Users"), 401)


def test_scim_credentials_do_not_open_console_pages(scim, scim_basic):
    for client in (scim, scim_basic):
        r = client.client.get("/console/")
        assert r.status_code == 302, r.content
        assert "login" in r["Location"]


# --- provider isolation ---------------------------------------------------------------------


def test_another_providers_user_is_404_everywhere(scim, other_scim):
    theirs = created(other_scim, new_user(1))
    uid = str(theirs.provider_link.scim_id)
    before = snapshot()
    assert_scim_error(scim.get(f"/Users/{uid}"), 404)
    assert_scim_error(scim.put(f"/Users/{uid}", new_user(1, title="Pwned")), 404)
    r = scim.patch(f"/Users/{uid}", patch_ops({"op": "replace", "path": "active", "value": False}))
    assert_scim_error(r, 404)
    assert_scim_error(scim.delete(f"/Users/{uid}"), 404)
    assert snapshot() == before
    theirs.refresh_from_db()
    assert theirs.status == UserStatus.ACTIVE


def test_list_and_filter_show_only_the_providers_own_users(scim, other_scim):
    created(other_scim, new_user(1))
    created(scim, new_user(2))
    body = scim.get("/Users").json()
    assert body["totalResults"] == 1
    assert [u["userName"] for u in body["Resources"]] == ["user2@example.com"]
    r = scim.get("/Users", data={"filter": 'userName eq "user1@example.com"'})
    assert r.json()["totalResults"] == 0


def test_local_user_cannot_be_taken_over_by_rename(scim):
    User.objects.create_user("admin@example.com", "pw", is_local=True)
    mine = created(scim, new_user(1))
    before = snapshot()
    r = scim.patch(
        f"/Users/{mine.provider_link.scim_id}",
        patch_ops({"op": "replace", "path": "userName", "value": "ADMIN@example.com"}),
    )
    body = assert_scim_error(r, 409, "uniqueness")
    assert "local" in body["detail"]
    assert snapshot() == before


@pytest.mark.parametrize(
    "spelling, reads_as",
    [
        ("admin@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "example.com"),  # full width
        ("admin@exam\u00adple.com", "example.com"),  # soft hyphen
        ("admin@exa\u034fmple.com", "example.com"),  # combining grapheme joiner
        ("admin@EXAMPLE.\uff23\uff2f\uff2d", "example.com"),
    ],
)
def test_a_domain_written_so_it_reads_as_another_is_refused(scim, other_scim, spelling, reads_as):
    # Django's email check reads the domain through IDNA, which maps these to ASCII;
    # uniqueness compares the text: a second account for a console admin's mailbox.
    # Refused, naming the spelling it stands for, on create and on rename.
    User.objects.create_user("admin@example.com", "pw", is_local=True)
    mine = created(scim, new_user(1))
    before = snapshot()
    r = scim.post("/Users", new_user(2, userName=spelling))
    assert reads_as in assert_scim_error(r, 400, "invalidValue")["detail"]
    r = scim.patch(
        f"/Users/{mine.provider_link.scim_id}",
        patch_op_username(spelling),
    )
    assert reads_as in assert_scim_error(r, 400, "invalidValue")["detail"]
    assert snapshot() == before


def patch_op_username(value):
    return patch_ops({"op": "replace", "path": "userName", "value": value})


def test_a_domain_with_an_invisible_character_is_no_email_address(scim):
    r = scim.post("/Users", new_user(2, userName="admin@example.com\u200b"))
    assert "not a valid email address" in assert_scim_error(r, 400, "invalidValue")["detail"]


def test_both_spellings_of_an_internationalized_domain_are_one_address(scim, other_scim):
    # münchen.de and xn--mnchen-3ya.de are one domain: whichever came first keeps the address,
    # in any case, on create and on rename; straße.de is a domain of its own (IDNA 2008).
    created(other_scim, new_user(9, userName="anna@m\u00fcnchen.example"))
    mine = created(scim, new_user(1))
    before = snapshot()
    for spelling in ("anna@xn--mnchen-3ya.example", "ANNA@XN--MNCHEN-3YA.example"):
        r = scim.post("/Users", new_user(2, userName=spelling))
        assert "m\u00fcnchen" in assert_scim_error(r, 409, "uniqueness")["detail"]
        r = scim.patch(f"/Users/{mine.provider_link.scim_id}", patch_op_username(spelling))
        assert_scim_error(r, 409, "uniqueness")
    assert snapshot() == before
    created(scim, new_user(3, userName="bob@xn--mnchen-3ya.example"))
    r = scim.post("/Users", new_user(4, userName="BOB@m\u00fcnchen.example"))
    assert "xn--mnchen-3ya" in assert_scim_error(r, 409, "uniqueness")["detail"]
    for n, name in enumerate(["x@stra\u00dfe.example", "x@strasse.example"], start=5):
        assert scim.post("/Users", new_user(n, userName=name)).status_code == 201


def test_an_internationalized_domain_written_as_it_reads_is_kept(scim):
    for n, name in enumerate(["anna@m\u00fcnchen.example", "bob@M\u00fcnchen.EXAMPLE"]):
        r = scim.post("/Users", new_user(n, userName=name))
        assert (r.status_code, r.json()["userName"]) == (201, name)


@pytest.mark.parametrize(
    "spelling",
    [
        "x@M\u00dcNCHEN.example",  # a capital only ASCII letters may have
        "x@mu\u0308nchen.example",  # decomposed
        "x@\u0130.example",  # Python lowers it to i + U+0307, PostgreSQL to i: two keys
    ],
)
def test_only_ascii_letters_of_an_internationalized_domain_may_differ_in_case(scim, spelling):
    r = scim.post("/Users", new_user(1, userName=spelling))
    assert "reads as" in assert_scim_error(r, 400, "invalidValue")["detail"]


def test_a_user_named_before_the_domain_rule_can_still_be_deprovisioned(scim):
    # A userName the stricter rule refuses, stored before it: the PATCH that deprovisions
    # it (Okta, Entra) must still go through; renaming onto such a name is refused.
    mine = created(scim, new_user(1))
    User.objects.filter(pk=mine.pk).update(username="b@exam\u00adple.com")
    url = f"/Users/{mine.provider_link.scim_id}"
    r = scim.patch(url, patch_ops({"op": "replace", "path": "active", "value": False}))
    assert r.status_code == 200, r.content
    assert User.objects.get(pk=mine.pk).status == UserStatus.BLOCKED
    # DELETEd and pushed again under that name: taken back, as any user this provider removed.
    assert scim.delete(url).status_code == 204
    r = scim.post("/Users", new_user(1, userName="b@exam\u00adple.com"))
    assert r.status_code == 201, r.content
    assert User.objects.get(username="b@exam\u00adple.com").pk == mine.pk
    # Another name under the rule is still refused.
    r = scim.post("/Users", new_user(2, userName="c@exam\u00adple.com"))
    assert_scim_error(r, 400, "invalidValue")


def test_local_user_is_not_listed(scim):
    User.objects.create_user("admin@example.com", "pw", is_local=True)
    r = scim.get("/Users", data={"filter": 'userName eq "admin@example.com"'})
    assert r.json()["totalResults"] == 0


def test_manager_must_be_the_providers_own_user(scim, other_scim):
    theirs = created(other_scim, new_user(1))
    before = snapshot()
    body = new_user(2)
    body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = {
        "manager": {"value": str(theirs.provider_link.scim_id)}
    }
    assert_scim_error(scim.post("/Users", body), 400, "invalidValue")
    assert snapshot() == before


def test_deleted_user_is_gone_only_from_that_provider(scim):
    mine = created(scim, new_user(1))
    uid = mine.provider_link.scim_id
    assert scim.delete(f"/Users/{uid}").status_code == 204
    assert not ProviderUser.objects.filter(scim_id=uid).exists()
    assert User.objects.filter(pk=mine.pk).exists()  # kept for legal hold and audit


# --- concurrency ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_creates_yield_one_201_and_one_409(scim):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions")
    creates = [
        ("POST", "/Users", new_user(1, userName=name, externalId=None))
        for name in ("race@example.com", "RACE@example.com")
    ]
    assert at_once(scim, creates) == [201, 409]
    assert User.objects.filter(username__iexact="race@example.com").count() == 1
    assert ProviderUser.objects.filter(provider=scim.provider).count() == 1


def at_once(scim, requests: list[tuple[str, str, dict]]) -> list[int]:
    """The statuses of ``(method, path, body)`` requests sent by threads released together,
    each with a connection of its own."""
    from rest_framework.test import APIClient

    barrier = threading.Barrier(len(requests))
    statuses: list[int] = []
    lock = threading.Lock()

    def send(method: str, path: str, body: dict):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {scim.secret}")
        barrier.wait()
        try:
            r = client.generic(method, scim.base + path, json.dumps(body), "application/scim+json")
            with lock:
                statuses.append(r.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


@pytest.mark.django_db(transaction=True)
def test_two_users_given_one_external_id_at_once_get_one_200_and_one_409(scim):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions")
    ids = [scim.post("/Users", new_user(n)).json()["id"] for n in (1, 2)]
    for round_ in range(8):
        value = f"shared-{round_}"
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "externalId", "value": value}],
        }
        assert at_once(scim, [("PATCH", f"/Users/{uid}", body) for uid in ids]) == [200, 409]
        assert ProviderUser.objects.filter(external_id=value).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_users_made_each_others_manager_at_once_both_succeed(scim):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions")
    a, b = (scim.post("/Users", new_user(n)).json()["id"] for n in (1, 2))

    def manager(value: str | None) -> dict:
        path = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
        op = (
            {"op": "replace", "path": path, "value": value}
            if value
            else {"op": "remove", "path": path}
        )
        return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]}

    for _ in range(6):  # deadlocked (503) in most rounds when locks blocked KEY SHARE
        assert at_once(
            scim, [("PATCH", f"/Users/{a}", manager(b)), ("PATCH", f"/Users/{b}", manager(a))]
        ) == [200, 200]
        assert at_once(
            scim, [("PATCH", f"/Users/{a}", manager(None)), ("PATCH", f"/Users/{b}", manager(None))]
        ) == [200, 200]


@pytest.mark.django_db(transaction=True)
def test_deletes_of_users_sharing_groups_beside_group_patches_never_deadlock(scim):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions")
    ids = [scim.post("/Users", new_user(n)).json()["id"] for n in range(1, 13)]
    leaving, joining = ids[:6], ids[6:]
    groups = []
    for n in range(4):
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": f"Team {n}",
            "members": [{"value": uid} for uid in leaving],
        }
        groups.append(scim.post("/Groups", body).json()["id"])
    requests = [("DELETE", f"/Users/{uid}", {}) for uid in leaving]
    for n, gid in enumerate(groups):
        add = {
            "op": "add",
            "path": "members",
            "value": [{"value": joining[n]}, {"value": joining[n + 2]}],
        }
        requests.append(
            (
                "PATCH",
                f"/Groups/{gid}",
                {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [add]},
            )
        )
    assert at_once(scim, requests) == [200] * 4 + [204] * 6
    for gid in groups:
        members = {m["value"] for m in scim.get(f"/Groups/{gid}").json()["members"]}
        assert not members & set(leaving) and len(members) == 2


def test_an_external_id_taken_between_the_check_and_the_write_is_409(scim, monkeypatch):
    # What a concurrent write does to the check: it sees nothing, the unique index refuses.
    from provisioning import user_sync

    ids = [scim.post("/Users", new_user(n)).json()["id"] for n in (1, 2)]
    monkeypatch.setattr(user_sync, "_check_collisions", lambda *args: None)
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "externalId", "value": "ext-1"}],
    }
    r = scim.patch(f"/Users/{ids[1]}", body)
    assert (r.status_code, r.json()["scimType"]) == (409, "uniqueness"), r.content
    assert "externalId" in r.json()["detail"]


def test_a_removed_user_can_be_taken_back_only_by_the_provider_that_removed_it(scim, other_scim):
    from identity.models import User
    from tests.scim.conftest import new_user

    created = scim.post("/Users", new_user(7))
    assert created.status_code == 201, created.content
    assert scim.delete(f"/Users/{created.json()['id']}").status_code == 204

    r = other_scim.post("/Users", new_user(7))
    assert r.status_code == 409, r.content
    assert "did not provision" in r.json()["detail"]
    assert not hasattr(User.objects.get(username="user7@example.com"), "provider_link")

    r = scim.post("/Users", new_user(7))
    assert r.status_code == 201, r.content
    assert User.objects.get(username="user7@example.com").provider_link.provider == scim.provider


def test_console_accounts_are_local_and_out_of_every_providers_reach(scim):
    from identity.models import User
    from tests.scim.conftest import new_user

    account = User.objects.create_user("helpdesk@example.com", "a long enough password")
    assert account.is_local
    r = scim.post("/Users", new_user(1, userName="HELPDESK@example.com"))
    assert r.status_code == 409, r.content
    assert "local user" in r.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_deleting_a_provider_while_it_deletes_a_user_does_not_deadlock(scim, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions")
    import time

    from provisioning import services, user_sync
    from provisioning.models import Provider
    from synclog.record import Actor

    uid = scim.post("/Users", new_user(1)).json()["id"]
    group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops"}
    scim.post("/Groups", {**group, "members": [{"value": uid}]})
    release = user_sync._release_reports

    def slowly(*args, **kwargs):  # the SCIM DELETE holds its link, user and group locks a while
        time.sleep(0.6)
        return release(*args, **kwargs)

    monkeypatch.setattr(user_sync, "_release_reports", slowly)
    outcome: dict = {}

    def delete_the_provider():
        time.sleep(0.2)
        try:
            services.delete_provider(scim.provider, actor=Actor.system("test"))
            outcome["provider"] = "deleted"
        except Exception as exc:  # a deadlock was an OperationalError here
            outcome["provider"] = repr(exc)
        finally:
            connection.close()

    console = threading.Thread(target=delete_the_provider)
    console.start()
    status = scim.delete(f"/Users/{uid}").status_code
    console.join()
    assert outcome["provider"] == "deleted" and status == 204
    assert not Provider.objects.filter(pk=scim.provider.pk).exists()
    with pytest.raises(services.ProviderError):
        services.delete_provider(scim.provider, actor=Actor.system("test"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("victim_times", [1, 2])
def test_a_write_chosen_as_a_deadlock_victim_runs_once_more(scim, monkeypatch, victim_times):
    # PostgreSQL breaks a deadlock by failing one transaction, which wrote nothing: it runs
    # again before the IdP hears 503 (the fuzz saw three 503s in 2,500 concurrent writes).
    from django.db import OperationalError
    from psycopg import errors as pg_errors

    from provisioning import user_sync

    uid = scim.post("/Users", new_user(1)).json()["id"]
    real, calls = user_sync.update_user, []

    def a_victim(*args, **kwargs):
        calls.append(1)
        if len(calls) <= victim_times:
            raise OperationalError("deadlock detected") from pg_errors.DeadlockDetected()
        return real(*args, **kwargs)

    monkeypatch.setattr(user_sync, "update_user", a_victim)
    r = scim.patch(f"/Users/{uid}", patch_ops({"op": "replace", "path": "title", "value": "X"}))
    if victim_times == 1:
        assert r.status_code == 200 and r.json()["title"] == "X" and len(calls) == 2
    else:  # once only: a second failure is the IdP's to retry
        assert r.status_code == 503 and r["Retry-After"] == "1" and len(calls) == 2
        assert "title" not in scim.get(f"/Users/{uid}").json()


def concurrent(test):
    """A test of two transactions at once: PostgreSQL's (SQLite runs one writer at a time)."""
    needs = pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL's concurrent transactions"
    )
    return needs(pytest.mark.django_db(transaction=True)(test))


def _holding(monkeypatch, module, name, seconds):
    """``module.name`` made to wait ``seconds`` after it ran, with its locks held."""
    import time

    real = getattr(module, name)

    def slowly(*args, **kwargs):
        result = real(*args, **kwargs)
        time.sleep(seconds)
        return result

    monkeypatch.setattr(module, name, slowly)


def _at_once(first, second, delay=0.25):
    """``first()`` in a thread, ``second()`` here ``delay`` seconds later; both results."""
    import time

    out: dict = {}

    def run():
        try:
            out["first"] = first()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(delay)
    out["second"] = second()
    thread.join()
    return out["first"], out["second"]


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@concurrent
@pytest.mark.parametrize("first", ["manager set", "manager deleted"])
def test_a_manager_deleted_while_a_report_names_it_is_never_left_named(scim, monkeypatch, first):
    # Both committed before: the report named a deleted manager (106 after a probe's run).
    from provisioning import user_sync

    boss = scim.post("/Users", new_user(1)).json()["id"]
    report = scim.post("/Users", new_user(2)).json()["id"]
    name_boss = patch_ops(
        {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": boss}}
    )

    def set_manager():
        return scim.patch(f"/Users/{report}", name_boss).status_code

    def delete_boss():
        return scim.delete(f"/Users/{boss}").status_code

    if first == "manager set":  # holds the boss's link while it commits
        _holding(monkeypatch, user_sync, "hold_linked", 0.6)
        patched, deleted = _at_once(set_manager, delete_boss)
        assert (patched, deleted) == (200, 204)
    else:  # the DELETE holds the link FOR UPDATE while it releases reports
        _holding(monkeypatch, user_sync, "_release_reports", 0.6)
        deleted, patched = _at_once(delete_boss, set_manager)
        assert (deleted, patched) == (204, 400)
    assert ENTERPRISE not in scim.get(f"/Users/{report}").json()
    assert User.objects.get(username="user2@example.com").manager_id is None


@concurrent
def test_a_member_added_while_the_user_is_deleted_does_not_stay(scim, monkeypatch):
    from provisioning import group_sync
    from provisioning.models import GroupMembership

    uid = scim.post("/Users", new_user(1)).json()["id"]
    group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops"}
    gid = scim.post("/Groups", group).json()["id"]
    _holding(monkeypatch, group_sync, "hold_linked", 0.6)
    add = patch_ops({"op": "add", "path": "members", "value": [{"value": uid}]})
    added, deleted = _at_once(
        lambda: scim.patch(f"/Groups/{gid}", add).status_code,
        lambda: scim.delete(f"/Users/{uid}").status_code,
    )
    assert (added, deleted) in ((200, 204), (204, 204))
    assert not GroupMembership.objects.exists()  # the DELETE waited, then took it out


@concurrent
@pytest.mark.parametrize("pushed", ["new", "taken back"])
def test_a_user_created_with_a_manager_being_deleted_never_names_it(scim, monkeypatch, pushed):
    # A create checked its manager before its own transaction began: the DELETE's release
    # ran before the new report existed, and it kept naming the deleted manager.
    from provisioning import user_sync

    boss = scim.post("/Users", new_user(1)).json()["id"]
    if pushed == "taken back":
        assert scim.delete(f"/Users/{scim.post('/Users', new_user(2)).json()['id']}").status_code
    _holding(monkeypatch, user_sync, "hold_linked", 0.6)
    body = new_user(2, **{ENTERPRISE: {"manager": {"value": boss}}})
    created_status, deleted = _at_once(
        lambda: scim.post("/Users", body).status_code,
        lambda: scim.delete(f"/Users/{boss}").status_code,
    )
    assert (created_status, deleted) == (201, 204)
    assert User.objects.get(username="user2@example.com").manager_id is None


@pytest.mark.django_db(transaction=True)
def test_a_manager_deleted_after_a_create_checked_it_is_not_named(scim, monkeypatch):
    # The create reads its manager before its transaction begins; a DELETE committing in
    # between went unseen (on SQLite too) and the new user named the deleted manager.
    from provisioning import user_sync

    boss = scim.post("/Users", new_user(1)).json()["id"]
    real = user_sync._validated

    def then_deleted(provider, state, link):
        checked = real(provider, state, link)
        if link is None and state["manager"]:
            thread = threading.Thread(target=lambda: (scim.delete(f"/Users/{boss}"),
                                                      connection.close()))  # fmt: skip
            thread.start()
            thread.join()
        return checked

    monkeypatch.setattr(user_sync, "_validated", then_deleted)
    body = new_user(2, **{ENTERPRISE: {"manager": {"value": boss}}})
    r = scim.post("/Users", body)
    assert_scim_error(r, 400, "invalidValue")
    assert "push the manager first" in r.json()["detail"]
    assert not User.objects.filter(username="user2@example.com").exists()


@concurrent
def test_a_create_naming_a_manager_being_deleted_waits_and_is_refused(scim, monkeypatch):
    # The one-round-trip create holds the manager's link in its pipeline: behind a DELETE
    # that holds it FOR UPDATE, it waits, finds it gone, and writes nothing.
    from provisioning import user_sync

    boss = scim.post("/Users", new_user(1)).json()["id"]
    _holding(monkeypatch, user_sync, "_release_reports", 0.6)
    body = new_user(2, **{ENTERPRISE: {"manager": {"value": boss}}})
    deleted, created_status = _at_once(
        lambda: scim.delete(f"/Users/{boss}").status_code,
        lambda: scim.post("/Users", body).status_code,
    )
    assert (deleted, created_status) == (204, 400)
    assert not User.objects.filter(username="user2@example.com").exists()
