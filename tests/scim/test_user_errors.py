"""Bad input to /Users: a SCIM error body with the 4xx that names the problem, and nothing
written (no user, link, pending deactivation, sync-log or audit row)."""

import json

import pytest
from django.core.cache import cache
from django.test import override_settings

from identity.models import User
from synclog.models import RejectedRequest
from tests.scim.conftest import (
    assert_scim_error,
    created,
    new_user,
    patch_ops,
    payload,
    snapshot,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(scim):
    return created(scim, new_user(1, title="Countess"))


def uid_of(user) -> str:
    return str(user.provider_link.scim_id)


# --- body syntax and media type -------------------------------------------------------------


def test_malformed_json_is_400_invalid_syntax(scim, ada):
    before = snapshot()
    assert_scim_error(scim.post("/Users", '{"userName": "x@y.com",'), 400, "invalidSyntax")
    assert_scim_error(scim.patch(f"/Users/{uid_of(ada)}", "{nope"), 400, "invalidSyntax")
    assert_scim_error(scim.put(f"/Users/{uid_of(ada)}", "[1, 2]"), 400, "invalidSyntax")
    assert snapshot() == before


@pytest.mark.parametrize("depth", [33, 990, 5000])
def test_a_body_nested_too_deeply_is_400_invalid_syntax(scim, ada, depth):
    # Near Python's recursion limit the JSON decoder raised RecursionError: a 500.
    before = snapshot()
    deep = "[" * depth + "]" * depth
    body = '{"userName": "x@example.com", "title": ' + deep + "}"
    assert_scim_error(scim.post("/Users", body), 400, "invalidSyntax")
    assert_scim_error(scim.patch(f"/Users/{uid_of(ada)}", body), 400, "invalidSyntax")
    search = '{"filter": "userName pr", "x": ' + deep + "}"
    assert_scim_error(scim.post("/Users/.search", search), 400, "invalidSyntax")
    assert snapshot() == before
    ok = {
        "userName": "x@example.com",
        "title": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    }
    assert_scim_error(scim.post("/Users", ok), 400, "invalidValue")  # title: not a string


def test_a_body_over_the_upload_limit_is_413_and_writes_nothing(scim, ada, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    before = snapshot()
    big = new_user(2, displayName="x" * 3000)
    assert_scim_error(scim.post("/Users", big), 413)
    assert_scim_error(scim.put(f"/Users/{uid_of(ada)}", big), 413)
    assert snapshot() == before


def test_a_nul_character_anywhere_in_a_body_is_400_invalid_value(scim, ada):
    # JSON's "\u0000" parses, but PostgreSQL text cannot store it: a 400, not a 500.
    before = snapshot()
    user = new_user(2, displayName="Ada\u0000")
    assert_scim_error(scim.post("/Users", user), 400, "invalidValue")
    replace = patch_ops({"op": "replace", "path": "title", "value": "x\u0000"})
    assert_scim_error(scim.patch(f"/Users/{uid_of(ada)}", replace), 400, "invalidValue")
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G\u0000"}
    assert_scim_error(scim.post("/Groups", body), 400, "invalidValue")
    assert snapshot() == before


def test_an_unpaired_surrogate_anywhere_in_a_body_is_400_invalid_value(scim, ada):
    # JSON's "\ud800" parses into a string no database can store nor orjson answer with.
    before = snapshot()
    for user in (
        new_user(2, externalId="x\ud800"),
        new_user(2, name={"givenName": "\udc00Ada"}),
        {**new_user(2), "urn:ietf:params:scim:schemas:extension:gatehouse:2.0:User": {
            "c42OrgName": "Org\ud83d"}},
    ):  # fmt: skip
        response = scim.post("/Users", user)
        assert_scim_error(response, 400, "invalidValue")
        assert "surrogate" in response.json()["detail"]
    replace = patch_ops({"op": "replace", "path": "title", "value": "x\udfff"})
    assert_scim_error(scim.patch(f"/Users/{uid_of(ada)}", replace), 400, "invalidValue")
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
              "filter": 'userName eq "a\ud800@example.com"'}  # fmt: skip
    assert_scim_error(scim.post("/Users/.search", search), 400, "invalidFilter")
    search = {**search, "filter": 'userName eq "a@example.com"', "sortBy": "title\ud800"}
    assert_scim_error(scim.post("/Users/.search", search), 400, "invalidValue")
    assert snapshot() == before
    ok = new_user(3, displayName="Ada \U0001f600")  # a paired surrogate is a character
    assert scim.post("/Users", ok).status_code == 201


def test_text_plain_body_is_415(scim, ada):
    before = snapshot()
    body = '{"userName": "x@y.com"}'
    assert_scim_error(scim.post("/Users", body, content_type="text/plain"), 415)
    assert_scim_error(scim.patch(f"/Users/{uid_of(ada)}", body, content_type="text/plain"), 415)
    assert snapshot() == before


def test_patch_without_operations_is_400(scim, ada):
    before = snapshot()
    r = scim.patch(f"/Users/{uid_of(ada)}", {"schemas": [], "op": "replace"})
    assert_scim_error(r, 400, "invalidSyntax")
    assert snapshot() == before


def test_patch_with_an_empty_operations_list_is_400_as_for_groups(scim, ada):
    # RFC 7644 §3.5.2: "an array of one or more PATCH operations".
    before = snapshot()
    r = scim.patch(f"/Users/{uid_of(ada)}", patch_ops())
    assert_scim_error(r, 400, "invalidValue")
    assert "at least one operation" in r.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("op", ["add", "replace", "Replace"])
@pytest.mark.parametrize(
    "path",
    [
        "title",
        "displayName",
        "emails",
        'emails[type eq "work"].value',
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    ],
)
def test_an_add_or_replace_without_a_value_is_400_and_clears_nothing(scim, ada, op, path):
    # RFC 7644 §3.5.2.1/§3.5.2.3: the value MUST be there. Read as null it erased the attribute.
    before = snapshot()
    r = scim.patch(f"/Users/{uid_of(ada)}", patch_ops({"op": op, "path": path}))
    assert_scim_error(r, 400, "invalidValue")
    assert snapshot() == before


def test_an_explicit_null_value_still_clears(scim, ada):
    r = scim.patch(
        f"/Users/{uid_of(ada)}", patch_ops({"op": "replace", "path": "title", "value": None})
    )
    assert r.status_code == 200, r.content
    assert "title" not in r.json()


def test_the_patchop_s_own_names_are_case_insensitive(scim, ada):
    # RFC 7643 §2.1: attribute names, "Operations", "op", "path" and "value" among them.
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "operations": [{"OP": "Replace", "PATH": "title", "VALUE": "Countess"}],
    }
    r = scim.patch(f"/Users/{uid_of(ada)}", body)
    assert r.status_code == 200, r.content
    assert r.json()["title"] == "Countess"


def test_patch_unknown_op_is_400(scim, ada):
    before = snapshot()
    r = scim.patch(f"/Users/{uid_of(ada)}", patch_ops({"op": "merge", "path": "title"}))
    assert_scim_error(r, 400, "invalidSyntax")
    assert snapshot() == before


def test_patch_remove_without_path_is_400_no_target(scim, ada):
    before = snapshot()
    r = scim.patch(f"/Users/{uid_of(ada)}", patch_ops({"op": "remove"}))
    assert_scim_error(r, 400, "noTarget")
    assert snapshot() == before


# --- filters and paging ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "filter_text",
    [
        'userName eq "x',
        "userName eq",
        'userName zz "x"',
        'foo eq "x"',
        'name.nickName eq "x"',  # no such sub-attribute (middleName is one, not kept)
        "active eq 3",
        'meta.lastModified gt "not a date"',
        "(((",
        "(" * 33 + 'userName eq "x"' + ")" * 33,  # the parser recurses per level
        "(" * 990 + 'userName eq "x"' + ")" * 990,
        'emails[type eq "work" and ' * 40 + 'value eq "x"' + "]" * 40,
        'emails[type eq "work"][primary eq true]',  # one value filter per attribute path
        'emails[emails[type eq "x"]]',
    ],
)
def test_bad_filter_is_400_invalid_filter(scim, ada, filter_text):
    before = snapshot()
    assert_scim_error(scim.get("/Users", data={"filter": filter_text}), 400, "invalidFilter")
    assert snapshot() == before


@pytest.mark.parametrize(
    "query",
    ["startIndex=abc", "count=abc", "count=1.5", "startIndex=", "count=1_0", "count=%D9%A5"],
)
def test_bad_paging_is_400(scim, ada, query):
    r = scim.get(f"/Users?{query}")
    if query == "startIndex=":
        assert r.status_code == 200, r.content  # empty means the default
        return
    assert_scim_error(r, 400, "invalidValue")


@pytest.mark.parametrize("sort", ["sortBy=foo", "sortBy=userName&sortOrder=sideways"])
def test_bad_sort_is_400(scim, ada, sort):
    assert_scim_error(scim.get(f"/Users?{sort}"), 400, "invalidValue")


# --- values ---------------------------------------------------------------------------------


def test_patch_unknown_attribute_path_is_400_invalid_path(scim, ada):
    before = snapshot()
    for path in (
        "foo",
        "name.middleInitial",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoeSize",
        'emails[type eq "work"].nope',
        "emails[type",
    ):
        r = scim.patch(
            f"/Users/{uid_of(ada)}",
            patch_ops(
                {"op": "replace", "path": "title", "value": "Changed"},  # must not be kept
                {"op": "replace", "path": path, "value": "x"},
            ),
        )  # fmt: skip
        assert_scim_error(r, 400, "invalidPath")
    assert snapshot() == before


def test_username_not_an_email_is_400_invalid_value(scim, ada):
    before = snapshot()
    body = assert_scim_error(scim.post("/Users", new_user(2, userName="not-an-email")), 400,
                             "invalidValue")  # fmt: skip
    assert "not-an-email" in body["detail"]
    r = scim.patch(
        f"/Users/{uid_of(ada)}", patch_ops({"op": "replace", "path": "userName", "value": "ada"})
    )
    assert_scim_error(r, 400, "invalidValue")
    assert snapshot() == before


def test_three_letter_country_is_400_invalid_value(scim, ada):
    before = snapshot()
    body = new_user(2, addresses=[{"type": "work", "country": "USA"}])
    assert_scim_error(scim.post("/Users", body), 400, "invalidValue")
    assert snapshot() == before


def test_unknown_manager_is_400(scim, ada, other_scim):
    foreign = created(other_scim, new_user(7))
    before = snapshot()
    for manager in ("not-a-uuid", "6f1c1d2e-0000-4000-8000-000000000000", uid_of(foreign)):
        r = scim.patch(
            f"/Users/{uid_of(ada)}",
            patch_ops(
                {
                    "op": "add",
                    "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                    "value": manager,
                }
            ),
        )
        assert_scim_error(r, 400, "invalidValue")
    assert snapshot() == before


def test_own_manager_is_400(scim, ada):
    before = snapshot()
    r = scim.patch(
        f"/Users/{uid_of(ada)}",
        patch_ops(
            {
                "op": "add",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "value": uid_of(ada),
            }
        ),
    )
    assert_scim_error(r, 400, "invalidValue")
    assert snapshot() == before


def test_missing_username_is_400(scim):
    before = snapshot()
    body = new_user(2)
    body.pop("userName")
    assert_scim_error(scim.post("/Users", body), 400, "invalidValue")
    assert_scim_error(scim.post("/Users", {}), 400, "invalidValue")
    assert snapshot() == before


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": "userName"},
        {"op": "replace", "path": "userName", "value": None},
        {"op": "replace", "path": "userName", "value": "  "},
    ],
)
def test_a_patch_cannot_remove_the_username(scim, ada, operation):
    before = snapshot()
    r = scim.patch(f"/Users/{uid_of(ada)}", patch_ops(operation))
    body = assert_scim_error(r, 400, "invalidValue")
    assert "userName is required" in body["detail"]  # not "'' is not a valid email address"
    assert snapshot() == before


def test_put_without_username_is_400(scim, ada):
    before = snapshot()
    body = new_user(1)
    body.pop("userName")
    assert_scim_error(scim.put(f"/Users/{uid_of(ada)}", body), 400, "invalidValue")
    assert snapshot() == before


@pytest.mark.parametrize(
    "extra",
    [
        {"active": "maybe"},
        {"name": "Ada Lovelace"},
        {"emails": "user2@example.com"},
        {"userName": ["user2@example.com"]},
        {"displayName": {"formatted": "Ada"}},
    ],
)
def test_wrongly_typed_values_are_400_invalid_value(scim, extra):
    before = snapshot()
    assert_scim_error(scim.post("/Users", new_user(2, **extra)), 400, "invalidValue")
    assert snapshot() == before


def test_invalid_email_value_is_400(scim):
    before = snapshot()
    body = new_user(2, emails=[{"value": "nope", "type": "work", "primary": True}])
    assert_scim_error(scim.post("/Users", body), 400, "invalidValue")
    assert snapshot() == before


def test_too_long_value_is_400_not_500(scim):
    before = snapshot()
    assert_scim_error(scim.post("/Users", new_user(2, title="x" * 5000)), 400, "invalidValue")
    assert snapshot() == before


# --- conflicts ------------------------------------------------------------------------------


def test_duplicate_username_differing_in_case_is_409(scim, ada):
    before = snapshot()
    body = assert_scim_error(
        scim.post("/Users", new_user(1, userName="USER1@Example.com", externalId="other")),
        409,
        "uniqueness",
    )
    assert "already exists" in body["detail"]
    assert snapshot() == before


def test_rename_onto_a_user_this_provider_deleted_says_why(scim, ada):
    other = created(scim, new_user(2))
    assert scim.delete(f"/Users/{other.provider_link.scim_id}").status_code == 204
    before = snapshot()
    body = assert_scim_error(
        scim.patch(
            f"/Users/{ada.provider_link.scim_id}",
            patch_ops({"op": "replace", "path": "userName", "value": other.username}),
        ),
        409,
        "uniqueness",
    )
    assert "deleted or deprovisioned earlier" in body["detail"]
    assert "takes that user back" in body["detail"]
    assert snapshot() == before


def test_duplicate_external_id_is_409(scim, ada):
    before = snapshot()
    assert_scim_error(scim.post("/Users", new_user(2, externalId="ext-1")), 409, "uniqueness")
    assert snapshot() == before


def test_rename_onto_an_existing_username_is_409(scim, ada):
    other = created(scim, new_user(2))
    before = snapshot()
    r = scim.patch(
        f"/Users/{uid_of(other)}",
        patch_ops({"op": "replace", "path": "userName", "value": "User1@example.com"}),
    )
    assert_scim_error(r, 409, "uniqueness")
    assert snapshot() == before


def test_collision_with_a_local_user_is_409_saying_local(scim):
    User.objects.create_user("admin@example.com", "pw", is_local=True)
    before = snapshot()
    body = assert_scim_error(
        scim.post("/Users", new_user(2, userName="Admin@example.com")), 409, "uniqueness"
    )
    assert "local" in body["detail"]
    assert snapshot() == before


def test_collision_with_another_providers_user_is_409(scim, other_scim):
    created(other_scim, new_user(5))
    before = snapshot()
    assert_scim_error(scim.post("/Users", new_user(5)), 409, "uniqueness")
    assert snapshot() == before


# --- rate limit and unexpected errors ---------------------------------------------------------


def test_rate_limit_is_429_with_retry_after(scim, monkeypatch):
    from provisioning.scim.authentication import ProviderRateThrottle

    # One fixed instant: a window boundary between two requests would reset the count.
    monkeypatch.setattr(ProviderRateThrottle, "timer", lambda self: 1_800_000_030.0)
    cache.clear()
    try:
        with override_settings(GATEHOUSE_SCIM_RATE_LIMIT="3/m"):
            for _ in range(3):
                assert scim.get("/Users").status_code == 200
            r = scim.get("/Users")
            assert_scim_error(r, 429)
            assert int(r["Retry-After"]) >= 1
            before = snapshot()
            assert_scim_error(scim.post("/Users", new_user(3)), 429)
            assert snapshot() == before
    finally:
        cache.clear()


def test_the_rate_counter_is_one_expiring_key_per_window(scim):
    from django.core.cache import caches

    from provisioning.scim import authentication

    cache.clear()
    try:
        assert [authentication._count("probe", 61) for _ in range(3)] == [1, 2, 3]
        assert cache.get("probe") == 3
        backend = caches["default"]
        if isinstance(backend, authentication.RedisCache):  # the one-round-trip path
            client = backend._cache.get_client("probe")
            assert 0 < client.ttl(backend.make_and_validate_key("probe")) <= 61
    finally:
        cache.clear()


def test_an_unavailable_cache_does_not_stop_provisioning(scim, monkeypatch, caplog):
    from provisioning.scim import authentication

    def down(key, timeout):
        raise ConnectionError("cache unreachable")

    monkeypatch.setattr(authentication, "_count", down)
    assert scim.get("/Users").status_code == 200
    assert "rate limit not applied" in caplog.text


@pytest.mark.parametrize("sqlstate", ["40P01", "40001", None])
def test_a_write_conflict_the_database_broke_is_503_retry(scim, monkeypatch, sqlstate):
    from django.db import OperationalError

    from provisioning import user_sync

    class Cause(Exception):
        pass

    def conflict(*args, **kwargs):
        cause = Cause("deadlock detected")
        cause.sqlstate = sqlstate
        message = "database is locked" if sqlstate is None else "deadlock detected"
        raise OperationalError(message) from cause

    monkeypatch.setattr(user_sync, "create_user", conflict)
    r = scim.post("/Users", new_user(9))
    assert_scim_error(r, 503)
    assert r["Retry-After"] == "1"


def test_a_database_busy_past_its_timeout_records_its_refusal_within_a_second(scim, monkeypatch):
    # Recording the refusal waited a second full busy timeout (30 s) on the same lock: the
    # IdP heard its 503 after a minute, and the row was lost anyway.
    from django.db import OperationalError, connection

    from provisioning import user_sync
    from provisioning.scim import errors

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's busy timeout")

    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    def timeout() -> int:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            return cursor.fetchone()[0]

    seen = []
    record = errors._record_rejection
    monkeypatch.setattr(
        errors, "_record_rejection", lambda *a: (seen.append(timeout()), record(*a))
    )
    monkeypatch.setattr(user_sync, "create_user", locked)
    before = timeout()
    assert_scim_error(scim.post("/Users", new_user(9)), 503)
    assert seen == [1000] and timeout() == before > 1000
    assert RejectedRequest.objects.get().status == 503


def test_unexpected_exception_is_a_generic_500_without_its_text(scim, monkeypatch):
    from provisioning import user_sync

    def explode(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(user_sync, "create_user", explode)
    before = snapshot()
    r = scim.post("/Users", new_user(2))
    body = assert_scim_error(r, 500)
    assert b"secret detail" not in r.content
    assert b"RuntimeError" not in r.content
    assert "request id" in body["detail"]
    assert snapshot() == before


def test_rejected_requests_are_recorded_for_the_provider(scim):
    scim.post("/Users", new_user(2, userName="nope"))
    row = RejectedRequest.objects.get()
    assert (row.provider_id, row.method, row.status, row.scim_type) == (
        scim.provider.pk,
        "POST",
        400,
        "invalidValue",
    )


def test_a_rejection_whose_path_holds_a_nul_is_recorded(scim):
    # PostgreSQL text cannot hold NUL: the row failed, and every such probe logged an ERROR.
    assert_scim_error(scim.get("/Users%00"), 404)
    row = RejectedRequest.objects.get()
    assert (row.status, "\x00" in row.path + row.detail) == (404, False)
    assert "\ufffd" in row.detail  # the path it quotes; row.path is percent-encoded


def test_refused_credentials_are_recorded_for_the_provider_once_a_minute(scim, other_scim):
    from django.core.cache import cache

    cache.clear()
    scim.client.credentials(HTTP_AUTHORIZATION="Bearer not-the-secret")
    for _ in range(3):  # an IdP retrying with a rotated secret
        assert_scim_error(scim.get("/Users"), 401)
    row = RejectedRequest.objects.get()
    assert (row.provider_id, row.method, row.status) == (scim.provider.pk, "GET", 401)
    assert "credentials" in row.detail.lower()
    # Each provider has its minute; a slug that names no provider records nothing.
    other_scim.client.credentials(HTTP_AUTHORIZATION="Basic bm9wZTpub3Bl")
    assert_scim_error(other_scim.get("/Users"), 401)
    assert RejectedRequest.objects.filter(provider_id=other_scim.provider.pk).count() == 1
    scim.client.get("/scim/v2/no-such-provider/Users")
    assert RejectedRequest.objects.count() == 2


def test_nobody_else_s_refusals_hide_the_idp_s_stale_secret(scim_basic):
    import base64

    def basic(username: str, secret: str) -> str:
        return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()

    username = scim_basic.provider.credential_username
    scim_basic.client.credentials(HTTP_AUTHORIZATION=basic("someone@else", "guess"))
    assert_scim_error(scim_basic.get("/Users"), 401)  # takes the minute of strangers
    scim_basic.client.credentials(HTTP_AUTHORIZATION=basic(username, "rotated"))
    for _ in range(2):
        assert_scim_error(scim_basic.get("/Users"), 401)  # the IdP: a minute of its own
    assert RejectedRequest.objects.filter(status=401).count() == 2


def test_okta_create_resent_is_409_not_a_second_user(scim):
    created(scim, payload("okta/create_user"))
    before = snapshot()
    assert_scim_error(scim.post("/Users", payload("okta/create_user")), 409, "uniqueness")
    assert snapshot() == before


@pytest.mark.parametrize(
    "attribute",
    [
        "meta.created",
        "meta.lastModified",
        "id",
        "externalId",
        "active",
        "emails.type",
        "userName",
        "title",
    ],
)
def test_no_filter_operator_or_value_on_any_attribute_is_a_500(scim, ada, attribute):
    # A fuzzing probe found meta.created eq "…" a 500 (a case-insensitive lookup on a date).
    values = ['"2020-01-01T00:00:00Z"', '"a1@example.com"', "5", "1e400", "true", "null",
              '"00000000-0000-0000-0000-000000000000"', '""']  # fmt: skip
    for op in ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"):
        for value in values:
            for path in ("/Users", "/Groups"):
                r = scim.get(path, data={"filter": f"{attribute} {op} {value}"})
                assert r.status_code in (200, 400), (attribute, op, value, path, r.content)
        r = scim.get("/Users", data={"filter": f"{attribute} pr"})
        assert r.status_code in (200, 400), (attribute, r.content)
    if attribute.startswith("meta."):
        for op in ("eq", "ne", "gt", "le"):
            r = scim.get("/Users", data={"filter": f'{attribute} {op} "2020-01-01T00:00:00Z"'})
            assert r.status_code == 200, (op, r.content)


def test_an_attribute_path_that_is_a_long_expression_is_400_not_a_500(scim, ada):
    # The path parser reads a path as a filter: a long "and" chain exhausted its recursion.
    chain = " and ".join(["title pr"] * 400)
    before = snapshot()
    r = scim.patch(
        f"/Users/{uid_of(ada)}", patch_ops({"op": "replace", "path": chain, "value": "x"})
    )
    assert_scim_error(r, 400, "invalidPath")
    r = scim.patch(f"/Users/{uid_of(ada)}", patch_ops({"op": "replace", "value": {chain: "x"}}))
    assert_scim_error(r, 400, "invalidPath")
    r = scim.patch(
        f"/Users/{uid_of(ada)}", patch_ops({"op": "replace", "value": {f"urn:x:{chain}": "x"}})
    )
    assert r.status_code == 400, r.content
    assert_scim_error(scim.get("/Users", data={"sortBy": chain}), 400, "invalidValue")
    assert snapshot() == before
    # In a POST it names no attribute Gatehouse knows: ignored, as unknown top-level
    # attributes are (RFC 7644 §3.3), like OneLogin's "urn:scim:schemas:extension:acme:2.0".
    r = scim.post("/Users", {**new_user(7), f"urn:x:{chain}": "x"})
    assert r.status_code == 201, r.content


def test_a_body_is_read_as_utf8_whatever_charset_it_names(scim):
    body = '{"userName": "cafe@example.com", "displayName": "Café"}'.encode()
    r = scim.post("/Users", body, content_type="application/scim+json; charset=latin-1")
    assert r.status_code == 201, r.content
    assert r.json()["displayName"] == "Café"


@pytest.mark.parametrize(
    "body",
    [
        b'{"userName": "x@example.com", "active": NaN}',  # not JSON (RFC 8259), Python reads it
        b'{"userName": "x@example.com", "displayName": "\xff"}',  # not UTF-8
        b'{"userName": "x@example.com"} trailing',
    ],
)
def test_what_the_fast_decoder_refuses_is_refused_as_before(scim, body):
    r = scim.post("/Users", body, content_type="application/scim+json")
    assert_scim_error(r, 400, "invalidSyntax")


def test_an_integer_past_64_bits_is_a_400_not_a_500(scim):
    body = b'{"userName": "x@example.com", "active": 123456789012345678901234567890}'
    r = scim.post("/Users", body, content_type="application/scim+json")
    assert_scim_error(r, 400, "invalidValue")


def test_options_is_a_scim_405_without_the_views_internals(scim):
    r = scim.client.options(f"{scim.base}/Users")
    assert_scim_error(r, 405)
    assert "OPTIONS" not in r["Allow"] and "POST" in r["Allow"]


@pytest.mark.parametrize("path", ["/Users/.search", "/Groups/.search", "/.search"])
def test_a_search_is_a_post_and_a_get_of_it_is_a_scim_405(scim, path):
    r = scim.get(path)
    assert_scim_error(r, 405)
    assert r["Allow"] == "POST"


def test_an_upper_case_schema_urn_in_a_patch_path_is_the_same_path(scim, ada):
    path = "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:DEPARTMENT"
    r = scim.patch(
        f"/Users/{uid_of(ada)}", patch_ops({"op": "replace", "path": path, "value": "R&D"})
    )
    assert r.status_code == 200, r.content
    assert r.json()["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] == {
        "department": "R&D"
    }


def test_a_number_out_of_range_is_no_text(scim, ada):
    body = b'{"op": "replace", "path": "title", "value": 1e999}'
    body = b'{"Operations": [' + body + b"]}"
    before = snapshot()
    r = scim.patch(f"/Users/{uid_of(ada)}", body, content_type="application/scim+json")
    assert_scim_error(r, 400, "invalidValue")
    assert snapshot() == before


def test_conditional_requests_follow_rfc_7232(scim, ada):
    url = f"/Users/{uid_of(ada)}"
    current = scim.get(url)["ETag"]
    # A GET with a stale If-Match is a 412 too (RFC 7232 §3.1).
    assert_scim_error(scim.get(url, HTTP_IF_MATCH='W/"999"'), 412)
    assert scim.get(url, HTTP_IF_MATCH=current).status_code == 200
    # A write "only if none exists" (If-None-Match: *) or "not over this version" is a 412.
    before = snapshot()
    body = new_user(1, title="Other")
    assert_scim_error(scim.put(url, body, HTTP_IF_NONE_MATCH="*"), 412)
    assert_scim_error(scim.put(url, body, HTTP_IF_NONE_MATCH=current), 412)
    assert snapshot() == before
    assert scim.put(url, body, HTTP_IF_NONE_MATCH='W/"999"').status_code == 200


def test_user_names_differing_only_in_the_case_of_a_non_ascii_letter_are_one(scim):
    # SQLite's own lower() folds ASCII only; Gatehouse's folds as PostgreSQL's does.
    first = scim.post("/Users", new_user(1, userName="jurgen@exämple.com"))
    assert first.status_code == 201, first.content
    r = scim.post("/Users", new_user(2, userName="JURGEN@EXÄMPLE.COM"))
    assert_scim_error(r, 409, "uniqueness")
    r = scim.get("/Users", data={"filter": 'userName eq "JURGEN@EXÄMPLE.COM"'})
    assert [u["id"] for u in r.json()["Resources"]] == [first.json()["id"]]


def test_a_search_request_s_names_are_case_insensitive(scim, ada):
    created(scim, new_user(2))
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "Filter": 'userName eq "user2@example.com"',
        "ATTRIBUTES": ["userName"],
        "Count": 5,
    }
    r = scim.post("/Users/.search", body)
    assert r.status_code == 200, r.content
    assert r.json()["totalResults"] == 1  # not everyone: the filter was read
    assert set(r.json()["Resources"][0]) == {"schemas", "id", "userName"}
    body = {"schemas": body["schemas"], "attributes": [5]}
    assert_scim_error(scim.post("/Users/.search", body), 400, "invalidSyntax")


# --- HTTP- and URL-level variations ---------------------------------------------------------


def test_scim_query_parameter_names_ignore_case(scim, ada):
    created(scim, new_user(2))
    r = scim.get("/Users", data={"Filter": f'userName eq "{ada.username}"', "COUNT": "5"})
    assert r.status_code == 200, r.content
    assert [u["userName"] for u in r.json()["Resources"]] == [ada.username]
    r = scim.get("/Users", data={"StartIndex": "2", "count": "1", "SORTBY": "userName"})
    assert (r.json()["startIndex"], len(r.json()["Resources"])) == (2, 1)


def test_a_scim_query_parameter_given_twice_is_400(scim, ada):
    r = scim.get(f"/Users?filter=userName%20eq%20%22{ada.username}%22&Filter=userName%20pr")
    assert "more than once" in assert_scim_error(r, 400, "invalidValue")["detail"]
    assert_scim_error(scim.get("/Users?count=1&count=2"), 400, "invalidValue")
    assert scim.get("/Users?count=1&unrelated=1&unrelated=2").status_code == 200


def test_a_body_starting_with_a_utf8_byte_order_mark_is_read(scim):
    body = b"\xef\xbb\xbf" + json.dumps(new_user(3)).encode()
    r = scim.post("/Users", body)
    assert r.status_code == 201, r.content


def test_a_compressed_body_is_415(scim):
    import gzip

    before = snapshot()
    body = gzip.compress(json.dumps(new_user(4)).encode())
    r = scim.post("/Users", body, HTTP_CONTENT_ENCODING="gzip")
    assert r.status_code == 415, r.content
    assert "Content-Encoding" in r.json()["detail"]
    assert snapshot() == before
    assert scim.post("/Users", new_user(4), HTTP_CONTENT_ENCODING="identity").status_code == 201


def test_too_many_query_parameters_is_400_not_500(scim):
    query = "&".join(f"a{n}=1" for n in range(1100))
    r = scim.get(f"/ServiceProviderConfig?{query}")
    assert_scim_error(r, 400, "invalidValue")


def test_a_content_encoding_header_without_a_compressed_body_is_ignored(scim):
    assert scim.get("/Users?count=1", HTTP_CONTENT_ENCODING="gzip").status_code == 200
    r = scim.post("/Users", new_user(5), HTTP_CONTENT_ENCODING="UTF-8")
    assert r.status_code == 201, r.content
