"""Round trips of SCIM writes on PostgreSQL, run as the server runs them (with the real commit).

POST /Users outside a transaction is sent as one pipeline with its own BEGIN and COMMIT
(provisioning/user_sync.py, synclog/later.py, identity/keys.py): both create paths must
write the same rows, and a collision in the fast one must leave nothing behind. A PATCH
reads the user's open deactivation with the locked user (provisioning/selectors.py).
Most tests run inside a test transaction, where the checked paths run; these do not."""

import pytest
from django.db import connection

from identity import keys
from identity.models import User
from provisioning.models import Provider, ProviderUser
from synclog.models import AuditLogEntry, SyncLogEntry

from .conftest import new_user

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's pipeline"),
]


@pytest.fixture
def checked_path_only(monkeypatch):
    monkeypatch.setattr(keys, "available", lambda: False)


def rows_of(username: str) -> dict:
    """Everything a create wrote for ``username``, without keys and times."""
    user = User.objects.get(username=username)
    link = ProviderUser.objects.get(user=user)
    return {
        "user": (user.organization_id, user.status, user.given_name, user.family_name,
                 user.email, user.has_usable_password()),
        "roles": sorted(user.roles.values_list("name", flat=True)),
        "link": (link.provider_id, link.external_id, link.version),
        "sync": sorted(
            SyncLogEntry.objects.filter(user_id=user.pk).values_list(
                "change_type", "attribute", "old_value", "new_value", "provider_id",
                "user_label",
            )
        ),
        "audit": list(
            AuditLogEntry.objects.filter(target_label=username).values_list(
                "actor_kind", "actor_label", "action"
            )
        ),
    }  # fmt: skip


def statements_sent(scim, body) -> tuple[object, list[bool]]:
    """The response, and for each statement whether it went out inside a pipeline."""
    pipelined = []

    def spy(execute, sql, params, many, context):
        pipelined.append(connection.connection._pipeline is not None)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        response = scim.post("/Users", body)
    return response, pipelined


def test_a_first_create_is_one_read_then_one_pipeline(scim):
    response, pipelined = statements_sent(scim, new_user(1))
    assert response.status_code == 201, response.content
    # The provider with the default placement (authentication), a block of keys, then every
    # write in one go.
    assert pipelined[0] is False
    assert len(pipelined) > 6 and all(pipelined[-6:])


def test_a_later_create_is_one_pipeline(scim):
    scim.post("/Users", new_user(9101))  # the process reads the provider, takes keys once
    response, pipelined = statements_sent(scim, new_user(9102))
    assert response.status_code == 201, response.content
    # The provider as the first create read it, checked by the write itself.
    assert len(pipelined) > 4 and all(pipelined)
    assert response.json()["id"] == str(ProviderUser.objects.get(external_id="ext-9102").scim_id)
    assert same_rows(9101, 9102)
    assert Provider.objects.get(pk=scim.provider.pk).user_count == 2


def same_rows(a: int, b: int) -> bool:
    """Whether users a and b (new_user numbers) were written alike, their numbers aside."""

    def rows(n: int) -> str:
        return repr(rows_of(f"user{n}@example.com")).replace(str(n), "N")

    return rows(a) == rows(b)


def test_a_secret_regenerated_since_the_last_create_is_refused(scim):
    from provisioning.services import regenerate_credentials
    from synclog.record import Actor

    assert scim.post("/Users", new_user(1)).status_code == 201
    regenerate_credentials(scim.provider, actor=Actor.system("test"))
    for body in (new_user(2), "{not json", new_user(1)):  # a create, bad JSON, a collision
        response = scim.post("/Users", body)
        assert response.status_code == 401, response.content
        assert response.json()["status"] == "401"
    assert not User.objects.filter(username="user2@example.com").exists()
    assert Provider.objects.get(pk=scim.provider.pk).user_count == 1


def test_a_create_after_the_placement_changed_lands_where_it_now_says(scim):
    from identity.models import Organization, Role

    assert scim.post("/Users", new_user(1)).status_code == 201
    role = Role.objects.create(name="Auditor")
    Organization.objects.default().default_roles.add(role)
    Provider.objects.filter(pk=scim.provider.pk).update(name="Okta renamed")
    response, pipelined = statements_sent(scim, new_user(2))
    assert response.status_code == 201, response.content
    user = User.objects.get(username="user2@example.com")
    assert sorted(user.roles.values_list("name", flat=True)) == ["Auditor", "Desktop User"]
    labels = set(
        SyncLogEntry.objects.filter(user_id=user.pk).values_list("provider_label", flat=True)
    )
    assert labels == {"Okta renamed"}
    assert Provider.objects.get(pk=scim.provider.pk).user_count == 2
    # The write that found the placement changed wrote nothing; the create ran after a read.
    assert not all(pipelined)


def test_errors_of_a_create_trusting_an_earlier_read_are_the_usual_ones(scim, other_scim):
    assert scim.post("/Users", new_user(1)).status_code == 201
    assert other_scim.post("/Users", new_user(2)).status_code == 201
    response = scim.post("/Users", "{not json")
    assert (response.status_code, response.json()["scimType"]) == (400, "invalidSyntax")
    response = scim.post("/Users", new_user(2, externalId="x"))
    assert response.status_code == 409 and "another provider" in response.json()["detail"]
    response = scim.post("/Users", new_user(3, externalId="ext-1"))
    assert response.status_code == 409 and "externalId" in response.json()["detail"]
    assert Provider.objects.get(pk=scim.provider.pk).user_count == 1


def test_both_paths_write_the_same_rows(scim, monkeypatch):
    assert scim.post("/Users", new_user(9101)).status_code == 201
    monkeypatch.setattr(keys, "available", lambda: False)
    assert scim.post("/Users", new_user(9102)).status_code == 201

    def same_person(n: int) -> str:  # the rows of user n, with n taken out
        return repr(rows_of(f"user{n}@example.com")).replace(str(n), "N")

    assert same_person(9101) == same_person(9102)
    fast = rows_of("user9101@example.com")
    # user added (userName, externalId, name.givenName, name.familyName, emails.value),
    # organization, roles
    assert fast["roles"] == ["Desktop User"] and len(fast["sync"]) == 7 and fast["audit"]
    assert Provider.objects.get(pk=scim.provider.pk).user_count == 2


def test_a_user_name_collision_writes_nothing_and_is_explained(scim, other_scim, caplog):
    assert other_scim.post("/Users", new_user(1)).status_code == 201
    before = (User.objects.count(), SyncLogEntry.objects.count(), AuditLogEntry.objects.count())
    response = scim.post("/Users", new_user(1, userName="USER1@example.com", externalId="x"))
    assert response.status_code == 409, response.content
    assert "another provider" in response.json()["detail"]
    after = (User.objects.count(), SyncLogEntry.objects.count(), AuditLogEntry.objects.count())
    assert after[0] == before[0] and after[1] == before[1]
    assert Provider.objects.get(pk=scim.provider.pk).user_count == 0
    # psycopg's echo of the aborted pipeline is dropped (console/log_filters.py): the 409
    # is the whole story.
    assert "pipeline aborted" not in caplog.text


def test_an_external_id_collision_leaves_no_user_behind(scim):
    assert scim.post("/Users", new_user(1)).status_code == 201
    response = scim.post("/Users", new_user(2, externalId="ext-1"))
    assert response.status_code == 409, response.content
    assert "externalId" in response.json()["detail"]
    assert not User.objects.filter(username="user2@example.com").exists()
    assert Provider.objects.get(pk=scim.provider.pk).user_count == 1


def test_a_user_this_provider_removed_is_taken_back(scim):
    created = scim.post("/Users", new_user(1)).json()
    assert scim.delete(f"/Users/{created['id']}").status_code == 204
    again = scim.post("/Users", new_user(1))
    assert again.status_code == 201, again.content
    assert User.objects.filter(username="user1@example.com").count() == 1


def test_an_inactive_create_takes_the_checked_path(scim):
    response, pipelined = statements_sent(scim, new_user(1, active=False))
    assert response.status_code == 201, response.content
    assert response.json()["active"] is False
    assert not all(pipelined)


def test_links_keep_the_order_they_were_created_in(scim):
    # Lists page by the link's key with cached keyset anchors: only the user's key is taken
    # ahead, the link's comes from its sequence at INSERT.
    ids = [scim.post("/Users", new_user(n)).json()["id"] for n in range(1, 4)]
    links = list(ProviderUser.objects.order_by("id").values_list("scim_id", flat=True))
    assert [str(scim_id) for scim_id in links] == ids


def test_a_create_with_a_manager_answers_with_the_saved_rows(scim):
    boss = scim.post("/Users", new_user(1)).json()
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    body = new_user(2, **{enterprise: {"manager": {"value": boss["id"]}}})
    body["schemas"] = [*body["schemas"], enterprise]
    response = scim.post("/Users", body)
    assert response.status_code == 201, response.content
    assert response.json()[enterprise]["manager"]["value"] == boss["id"]
    assert scim.get(f"/Users/{response.json()['id']}").json() == response.json()


def test_keys_come_in_blocks_and_never_repeat(scim):
    users = [User(username=f"k{i}@example.com") for i in range(keys.BLOCK + 3)]
    links = [ProviderUser() for _ in users]
    for user, link in zip(users, links, strict=True):
        keys.assign(user, link)
    user_keys = [user.pk for user in users]
    assert len(set(user_keys)) == len(user_keys) and user_keys == sorted(user_keys)
    assert len({link.pk for link in links}) == len(links)
    # Rows inserted with the database's own keys meanwhile never collide with them.
    made = User.objects.create_user("db-chosen@example.com", "a long enough password")
    assert made.pk not in user_keys


def test_active_true_reads_the_open_deactivation_with_the_locked_user(scim):
    from identity import services
    from identity.models import DeactivationState, PendingDeactivation, UserStatus

    from .conftest import patch_ops

    uid = scim.post("/Users", new_user(1)).json()["id"]
    off = patch_ops({"op": "replace", "value": {"active": False}})
    assert scim.patch(f"/Users/{uid}", off).status_code == 200
    on = patch_ops({"op": "replace", "value": {"active": True}})
    sent = []

    def spy(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    compiled_read = services._OPEN_DEACTIVATION.statement(0)[0]
    with connection.execute_wrapper(spy):
        response = scim.patch(f"/Users/{uid}", on)
    assert response.status_code == 200, response.content
    assert response.json()["active"] is True
    assert compiled_read not in sent  # it came with the locked user, not on its own
    user = User.objects.get(username="user1@example.com")
    assert user.status == UserStatus.ACTIVE
    row = PendingDeactivation.objects.get(user=user)
    assert row.state == DeactivationState.CANCELLED and row.finished_at is not None


def test_an_open_deactivation_read_needs_the_users_lock():
    from datetime import timedelta

    from identity import services
    from synclog.record import Actor

    with pytest.raises(ValueError):
        services.apply_provider_active(
            User(username="x@example.com"), active=True, actor=Actor.system(),
            delay=timedelta(0), open_row=None,
        )  # fmt: skip


def test_a_get_by_user_name_is_read_with_the_provider(scim):
    from urllib.parse import quote

    uid = scim.post("/Users", new_user(1)).json()["id"]
    path = "/Users?filter=" + quote('userName eq "USER1@example.com"')
    first = scim.get(path)  # this process learns the slug's provider id
    response, pipelined = None, []

    def spy(execute, sql, params, many, context):
        pipelined.append(connection.connection._pipeline is not None)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        response = scim.get(path)
    assert pipelined == [True, True]  # the provider and the user, one round trip
    assert response.json() == first.json()
    assert response.json()["Resources"][0]["id"] == uid


def test_rows_read_ahead_for_another_provider_are_never_used(scim, other_scim):
    from urllib.parse import quote

    from provisioning.scim import authentication

    assert other_scim.post("/Users", new_user(1)).status_code == 201
    path = "/Users?filter=" + quote('userName eq "user1@example.com"')
    assert scim.get(path).status_code == 200  # this process learns the credential
    # As if this slug had named the other provider before (deleted, then created again).
    slug = scim.provider.slug
    authentication._known[slug] = (other_scim.provider.pk, *authentication._known[slug][1:])
    response = scim.get(path)
    assert response.status_code == 200
    assert response.json()["totalResults"] == 0  # the other provider's user stays unseen
    assert authentication._known[slug][0] == scim.provider.pk


def test_only_a_credential_accepted_before_makes_the_server_read_ahead(scim, other_scim):
    from urllib.parse import quote

    assert scim.post("/Users", new_user(1)).status_code == 201
    path = "/Users?filter=" + quote('userName eq "user1@example.com"')
    assert scim.get(path).status_code == 200
    statements = []

    def spy(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    # Another provider's valid token at this provider's URL, and no credential at all: the
    # provider is read, nothing else, and the answer is a 401 with nothing of the user.
    other_scim.base = scim.base
    anonymous = type(scim)(type("Issued", (), {"provider": scim.provider, "secret": ""})(), "")
    for client in (other_scim, anonymous):
        statements.clear()
        with connection.execute_wrapper(spy):
            response = client.get(path)
        assert response.status_code == 401
        assert "user1" not in response.content.decode()
        # Besides the provider, only the refusal's own row (errors.py, once a minute).
        reads = [s for s in statements if not s.startswith('INSERT INTO "synclog_rejectedrequest"')]
        assert len(reads) == 1 and "provisioning_provider" in reads[0]


def test_a_read_ahead_that_fails_falls_back_to_a_plain_read(scim, monkeypatch):
    from urllib.parse import quote

    from provisioning.scim.views import UsersView

    assert scim.post("/Users", new_user(1)).status_code == 201
    path = "/Users?filter=" + quote('userName eq "user1@example.com"')
    assert scim.get(path).status_code == 200
    monkeypatch.setattr(UsersView, "read_with_provider", lambda self, pid: ("SELECT 1 / 0", []))
    response = scim.get(path)  # the pipeline fails with the provider's read in it
    assert response.status_code == 200, response.content
    assert response.json()["totalResults"] == 1


def test_a_get_by_id_is_read_with_the_provider(scim, other_scim):
    import uuid

    uid = scim.post("/Users", new_user(1)).json()["id"]
    theirs = other_scim.post("/Users", new_user(2)).json()["id"]
    first = scim.get(f"/Users/{uid}")  # this process learns the credential
    pipelined = []

    def spy(execute, sql, params, many, context):
        pipelined.append(connection.connection._pipeline is not None)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        again = scim.get(f"/Users/{uid}")
    assert pipelined == [True, True]
    assert again.json() == first.json() and again["ETag"] == first["ETag"]
    # Read ahead or not: another provider's user and an unknown id are 404.
    assert scim.get(f"/Users/{theirs}").status_code == 404
    assert scim.get(f"/Users/{uuid.uuid4()}").status_code == 404
    assert scim.get("/Users/not-a-uuid").status_code == 404


def test_a_regenerated_secret_stops_the_old_one_reading_ahead(scim):
    from urllib.parse import quote

    from provisioning.services import regenerate_credentials
    from synclog.record import Actor

    assert scim.post("/Users", new_user(1)).status_code == 201
    path = "/Users?filter=" + quote('userName eq "user1@example.com"')
    assert scim.get(path).status_code == 200  # the old secret, accepted and remembered
    regenerate_credentials(scim.provider, actor=Actor.system("tests"))
    assert scim.get(path).status_code == 401  # read ahead once more, then forgotten
    statements = []

    def spy(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        assert scim.get(path).status_code == 401
    assert len(statements) == 1  # the provider only


def test_a_forced_read_ignores_what_another_thread_remembered_meanwhile(scim, monkeypatch):
    from provisioning.scim import authentication, base
    from provisioning.services import regenerate_credentials
    from synclog.record import Actor

    assert scim.post("/Users", new_user(1)).status_code == 201
    remembered = dict(authentication._assumable)
    regenerate_credentials(scim.provider, actor=Actor.system("test"))
    forget = base.forget_assumed

    def racing(view, *, stale):  # a create of another thread remembers the old read again
        forget(view, stale=stale)
        authentication._assumable.update(remembered)

    monkeypatch.setattr(base, "forget_assumed", racing)
    response = scim.post("/Users", new_user(2))
    assert response.status_code == 401, response.content
    assert not User.objects.filter(username="user2@example.com").exists()


def test_a_throttled_create_with_a_regenerated_secret_is_401(scim, settings):
    from provisioning.services import regenerate_credentials
    from synclog.record import Actor

    settings.GATEHOUSE_SCIM_RATE_LIMIT = "1/m"
    assert scim.post("/Users", new_user(1)).status_code == 201
    regenerate_credentials(scim.provider, actor=Actor.system("test"))
    assert scim.post("/Users", new_user(2)).status_code == 401


def test_only_a_changed_provider_is_forgotten(scim):
    from provisioning.scim import authentication

    boss = scim.post("/Users", new_user(1)).json()["id"]
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    with_manager = new_user(2, **{enterprise: {"manager": {"value": boss}}})
    assert scim.post("/Users", with_manager).status_code == 201  # more than the one write
    assert scim.provider.slug in authentication._assumable
    assert scim.post("/Users", new_user(2)).status_code == 409  # a collision
    assert scim.provider.slug in authentication._assumable
    Provider.objects.filter(pk=scim.provider.pk).update(name="Renamed")
    assert scim.post("/Users", new_user(3)).status_code == 201
    assert authentication._assumable[scim.provider.slug][0][1] == "Renamed"  # read again


def test_creates_after_failed_pipelines_never_meet_a_statement_psycopg_thinks_prepared(scim):
    # A trusted create that finds the provider changed fails its pipeline part way; a
    # statement being prepared behind the failure was marked prepared by psycopg, and the
    # next create on that connection failed with "prepared statement ... does not exist"
    # (a concurrency probe: 28 answers of 500 after "scim_provider set").
    from datetime import timedelta

    from provisioning.services import set_deactivation_delay
    from synclog.record import Actor

    n = iter(range(1, 1000))

    def change():
        provider = Provider.objects.get(pk=scim.provider.pk)
        delay = timedelta(minutes=10 + next(n))
        set_deactivation_delay(provider, delay=delay, actor=Actor.system("test"))

    statuses = []
    for before in range(6):  # where psycopg's 5th execution (it prepares then) falls
        connection.close()
        statuses.append(scim.post("/Users", new_user(next(n))).status_code)
        change()
        statuses.append(scim.post("/Users", new_user(next(n))).status_code)
        statuses += [scim.post("/Users", new_user(next(n))).status_code for _ in range(before)]
        change()
        statuses += [scim.post("/Users", new_user(next(n))).status_code for _ in range(3)]
    assert set(statuses) == {201}


def test_a_failed_pipeline_outside_a_transaction_drops_its_connection():
    from django.db import DatabaseError

    from identity.prepared import sent_together

    connection.ensure_connection()
    with pytest.raises(DatabaseError), sent_together(("SELECT 1 / 0", []), ("SELECT 1", [])):
        pass
    assert connection.connection is None  # the next statement starts on a clean one
    assert User.objects.count() >= 0


def test_a_create_whose_provider_is_deleted_meanwhile_is_401(scim, monkeypatch):
    from provisioning import services, user_sync
    from provisioning.scim import views
    from synclog.record import Actor

    create = user_sync.create_user

    def deleted_first(provider, *args, **kwargs):  # the console deletes it meanwhile
        services.delete_provider(provider, actor=Actor.system("test"))
        return create(provider, *args, **kwargs)

    monkeypatch.setattr(views.user_sync, "create_user", deleted_first)
    response = scim.post("/Users", new_user(1))
    assert response.status_code == 401, response.content
    assert not User.objects.filter(username="user1@example.com").exists()


def test_refusals_of_a_regenerated_secret_on_creates_are_recorded_once_a_minute(scim):
    from provisioning.services import regenerate_credentials
    from synclog.models import RejectedRequest
    from synclog.record import Actor

    assert scim.post("/Users", new_user(1)).status_code == 201
    regenerate_credentials(scim.provider, actor=Actor.system("test"))
    for n in range(2, 6):
        assert scim.post("/Users", new_user(n)).status_code == 401
    assert RejectedRequest.objects.filter(provider_id=scim.provider.pk, status=401).count() == 1
