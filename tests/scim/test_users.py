"""SCIM /Users: create, read, list, replace, modify, delete, ETags, lifecycle and sync log."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from identity.models import DeactivationState, PendingDeactivation, User, UserStatus
from synclog.models import AuditLogEntry, SyncChange, SyncLogEntry
from tests.scim.conftest import (
    CORE_USER_URN,
    ENTERPRISE_URN,
    LIST_URN,
    assert_scim_error,
    created,
    expected_scim_user,
    new_user,
    patch_ops,
    snapshot,
)

pytestmark = pytest.mark.django_db


# --- POST -----------------------------------------------------------------------------------


def test_create_answers_201_with_location_etag_and_whole_body(scim):
    r = scim.post("/Users", new_user(1, displayName="Ada Lovelace", title="Countess"))
    assert r.status_code == 201, r.content
    user = User.objects.get(username="user1@example.com")
    body = r.json()
    assert body == expected_scim_user(scim, user)
    assert r["Location"] == body["meta"]["location"]
    assert r["Location"].endswith(f"/scim/v2/{scim.provider.slug}/Users/{body['id']}")
    assert r["ETag"] == body["meta"]["version"] == 'W/"1"'
    assert r["Content-Type"].startswith("application/scim+json")


def test_create_stores_every_supported_attribute(scim):
    body = new_user(
        2,
        displayName="Ada L",
        title="Analyst",
        userType="Employee",
        addresses=[{"type": "work", "locality": "London", "region": "LDN", "country": "gb"}],
        **{
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "42",
                "department": "Maths",
                "division": "Engines",
            },
            "urn:ietf:params:scim:schemas:extension:gatehouse:2.0:User": {"c42OrgName": "Sales"},
        },
    )
    user = created(scim, body)
    assert (user.title, user.user_type, user.display_name) == ("Analyst", "Employee", "Ada L")
    assert (user.locality, user.region, user.country) == ("London", "LDN", "GB")
    assert (user.employee_number, user.department, user.division) == ("42", "Maths", "Engines")
    assert user.provider_link.org_attribute == "Sales"
    assert user.provider_link.external_id == "ext-2"
    assert user.status == UserStatus.ACTIVE


def test_create_logs_user_added_with_each_value_pushed_and_one_audit_row(scim):
    before_audit = AuditLogEntry.objects.count()
    boss = created(scim, new_user(2))
    body = new_user(3, title="Engineer", addresses=[{"type": "work", "country": "DE"}])
    body[ENTERPRISE_URN] = {
        "department": "R&D",
        "manager": {"value": str(boss.provider_link.scim_id)},
    }
    user = created(scim, body)
    rows = SyncLogEntry.objects.filter(user_id=user.pk).order_by("pk")
    assert {r.provider_id for r in rows} == {scim.provider.pk}
    assert {r.user_label for r in rows} == {"user3@example.com"}
    added = [(r.attribute, r.old_value, r.new_value) for r in rows if r.change_type == "user_added"]
    # userName first; then each value the user was pushed with, by its SCIM name; nothing
    # for what it was not given (displayName, userType...).
    assert added == [
        ("userName", "", "user3@example.com"),
        ("name.givenName", "", "Ada"),
        ("name.familyName", "", "Lovelace3"),
        ("title", "", "Engineer"),
        ("emails.value", "", "user3@example.com"),
        ("addresses.country", "", "DE"),
        ("department", "", "R&D"),
        ("externalId", "", "ext-3"),
        ("manager", "", str(boss.pk)),  # PRODUCT.md: manager values carry the user id
    ]
    assert not rows.filter(change_type=SyncChange.ATTRIBUTE_UPDATED).exists()
    assert rows.filter(change_type=SyncChange.ORGANIZATION_CHANGED).count() == 1
    audit = AuditLogEntry.objects.order_by("pk")[before_audit:]
    assert [(a.action, a.actor_label, a.target_label) for a in audit] == [
        ("user_added", scim.provider.credential_username, "user2@example.com"),
        ("user_added", scim.provider.credential_username, "user3@example.com"),
    ]


def test_create_with_active_false_blocks_and_schedules_deactivation(scim):
    r = scim.post("/Users", new_user(4, active=False))
    assert r.status_code == 201, r.content
    user = User.objects.get(username="user4@example.com")
    assert user.status == UserStatus.BLOCKED
    assert PendingDeactivation.objects.filter(user=user, state=DeactivationState.PENDING).exists()
    # Blocked as it was created: never modified since (RFC 7643 §3.1), as the next read says.
    meta = r.json()["meta"]
    assert meta["lastModified"] == meta["created"]
    assert scim.get(f"/Users/{r.json()['id']}").json()["meta"] == meta


def test_create_accepts_application_json(scim):
    r = scim.post("/Users", new_user(5), content_type="application/json")
    assert r.status_code == 201, r.content


@pytest.mark.parametrize(
    "accept, answered",
    [
        ("application/json", "application/json"),
        ("application/json;q=0.9, text/plain", "application/json"),
        ("application/scim+json", "application/scim+json"),
        ("application/json, application/scim+json", "application/scim+json"),
        ("application/json, */*", "application/scim+json"),
        ("text/html", "application/scim+json"),  # never a 406
        ("application/json;q=0, */*;q=0.1", "application/scim+json"),  # q=0: not acceptable
        ("application/scim+json;q=0.0, application/json", "application/json"),
        ("", "application/scim+json"),
    ],
)
def test_the_answer_is_labelled_application_json_only_for_a_client_accepting_just_that(
    scim, accept, answered
):
    # RFC 7644 §3.8: application/json SHOULD be supported as the Accept header; the body is
    # the same SCIM document either way.
    r = scim.post("/Users", new_user(5), HTTP_ACCEPT=accept)
    assert (r.status_code, r["Content-Type"]) == (201, answered)
    r = scim.get(f"/Users/{r.json()['id']}", HTTP_ACCEPT=accept)
    assert (r.status_code, r["Content-Type"]) == (200, answered)
    r = scim.get("/Users/nope", HTTP_ACCEPT=accept)
    assert (r.status_code, r["Content-Type"]) == (404, answered)


# --- GET ------------------------------------------------------------------------------------


def test_get_returns_the_whole_user(scim):
    user = created(scim, new_user(1, title="Countess"))
    uid = str(user.provider_link.scim_id)
    r = scim.get(f"/Users/{uid}")
    assert r.status_code == 200, r.content
    assert r.json() == expected_scim_user(scim, user)
    assert r["ETag"] == 'W/"1"'


def test_get_after_delete_is_404(scim):
    user = created(scim, new_user(1))
    uid = str(user.provider_link.scim_id)
    r = scim.delete(f"/Users/{uid}")
    assert r.status_code == 204, r.content
    assert r.content == b""
    assert_scim_error(scim.get(f"/Users/{uid}"), 404)


# --- list, paging, filters, sorting, projection ---------------------------------------------


@pytest.fixture
def five_users(scim):
    people = [
        ("alice@example.com", "Alice", "Archer", "ext-a", True),
        ("bob@example.com", "Bob", "Baker", "ext-b", True),
        ("carol@sample.org", "Carol", "Cooper", "ext-c", False),
        ("dave@example.com", "Dave", "Dyer", "ext-d", True),
        ("erin@sample.org", "Erin", "Evans", "ext-e", True),
    ]
    users = []
    for username, given, family, external, active in people:
        users.append(
            created(
                scim,
                {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": username,
                    "externalId": external,
                    "displayName": f"{given} {family}",
                    "name": {"givenName": given, "familyName": family},
                    "emails": [{"value": username, "type": "work", "primary": True}],
                    "active": active,
                },
            )
        )
    return users


def usernames(r) -> list[str]:
    assert r.status_code == 200, r.content
    return [u["userName"] for u in r.json()["Resources"]]


def test_list_pages_with_start_index_and_count(scim, five_users):
    r = scim.get("/Users?startIndex=2&count=2")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["schemas"] == [LIST_URN]
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (5, 2, 2)
    assert [u["userName"] for u in body["Resources"]] == ["bob@example.com", "carol@sample.org"]
    assert body["Resources"][0] == expected_scim_user(scim, five_users[1])


def test_a_sequential_walk_reads_every_user_once_with_whole_bodies(scim, five_users, other_scim):
    # Okta's import: startIndex 1, 3, 5 with count=2. Pages after the first are served by
    # keyset anchors (the id that ended the previous page), rows read in the same statement.
    other_scim.post("/Users", new_user(7, userName="zed@example.com"))
    seen = []
    for start in (1, 3, 5):
        body = scim.get(f"/Users?startIndex={start}&count=2").json()
        assert (body["totalResults"], body["startIndex"]) == (5, start)
        seen.extend(body["Resources"])
    assert seen == [expected_scim_user(scim, user) for user in five_users]
    # A removal shifts positions: the walk starts over and still sees each user once.
    scim.delete(f"/Users/{five_users[1].provider_link.scim_id}")
    names = []
    for start in (1, 3):
        names += usernames(scim.get(f"/Users?startIndex={start}&count=2"))
    assert names == ["alice@example.com", "carol@sample.org", "dave@example.com",
                     "erin@sample.org"]  # fmt: skip


def test_list_past_the_end_is_empty_with_the_total(scim, five_users):
    body = scim.get("/Users?startIndex=9&count=2").json()
    assert (body["totalResults"], body["itemsPerPage"], body["Resources"]) == (5, 0, [])


@pytest.mark.parametrize("start", ["10000000000", str(2**64)])
def test_a_start_past_any_integer_the_database_takes_is_an_empty_page(scim, five_users, start):
    # RFC 7644 §3.4.2.4: past the end is an empty list, however far.
    r = scim.get(f"/Users?startIndex={start}&count=2")
    assert r.status_code == 200, r.content
    assert (r.json()["totalResults"], r.json()["Resources"]) == (5, [])
    r = scim.get(f'/Users?filter=externalId sw "ext-"&startIndex={start}')
    assert (r.json()["totalResults"], r.json()["Resources"]) == (5, [])


def test_list_count_zero_answers_only_the_total(scim, five_users):
    body = scim.get("/Users?count=0").json()
    assert (body["totalResults"], body["itemsPerPage"], body["Resources"]) == (5, 0, [])


def test_list_start_index_below_one_is_one(scim, five_users):
    body = scim.get("/Users?startIndex=0&count=1").json()
    assert body["startIndex"] == 1
    assert body["Resources"][0]["userName"] == "alice@example.com"


ALL_FIVE = [
    "alice@example.com", "bob@example.com", "carol@sample.org", "dave@example.com",
    "erin@sample.org",
]  # fmt: skip


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ('userName eq "BOB@example.com"', ["bob@example.com"]),
        ('userName ne "bob@example.com"', ["alice@example.com", "carol@sample.org",
                                           "dave@example.com", "erin@sample.org"]),
        ('userName co "sample"', ["carol@sample.org", "erin@sample.org"]),
        ('userName sw "DA"', ["dave@example.com"]),
        ('userName ew "@sample.org"', ["carol@sample.org", "erin@sample.org"]),
        ("userName pr", ["alice@example.com", "bob@example.com", "carol@sample.org",
                         "dave@example.com", "erin@sample.org"]),
        ('externalId eq "ext-c"', ["carol@sample.org"]),
        ('externalId eq "EXT-C"', []),
        ('emails eq "erin@sample.org"', ["erin@sample.org"]),
        ('emails.value co "alice"', ["alice@example.com"]),
        ('emails[type eq "work" and value co "bob"]', ["bob@example.com"]),
        ('name.givenName eq "dave"', ["dave@example.com"]),
        ('displayName sw "Erin"', ["erin@sample.org"]),
        ("active eq false", ["carol@sample.org"]),
        ('userName sw "a" or userName sw "b"', ["alice@example.com", "bob@example.com"]),
        ('userName co "example" and active eq true and name.familyName sw "D"',
         ["dave@example.com"]),
        ('not (userName co "example")', ["carol@sample.org", "erin@sample.org"]),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice@example.com"',
         ["alice@example.com"]),
        # Terms that hold for everyone (or no one) keep their meaning under or / not.
        ('id ne "x" or userName eq "bob@example.com"', ALL_FIVE),
        ('emails.type eq "work" or userName eq "bob@example.com"', ALL_FIVE),
        ('not (id ne "x")', []),
        ("not (active pr)", []),
        ('not (emails.type eq "home") and userName sw "a"', ["alice@example.com"]),
        ('id eq "x" or userName eq "bob@example.com"', ["bob@example.com"]),
    ],
)  # fmt: skip
def test_list_filters(scim, five_users, filter_text, expected):
    r = scim.get("/Users", data={"filter": filter_text})
    assert usernames(r) == expected
    assert r.json()["totalResults"] == len(expected)


@pytest.mark.parametrize(
    "filter_text",
    [
        'userName eq "BOB@example.com"',
        'USERNAME EQ "bob@EXAMPLE.com"',
        'externalId eq "ext-c"',
        'externalId eq "EXT-C"',
        'externalId eq ""',
        'userName eq "nobody@example.com"',
        'urn:ietf:params:scim:schemas:core:2.0:User:externalId eq "ext-a"',
        'externalId eq "true"',  # a quoted value is text, not the boolean
        'externalId eq "null"',
        '\tuserName  eq\t"bob@example.com" ',
        'userName\neq "bob@example.com"',  # the lexer skips spaces and tabs only
        'userName\u00a0eq "bob@example.com"',
        'userName eq "bob\x00@example.com"',
        'userName eq "' + "b" * 2000 + '@example.com"',
    ],
)
@pytest.mark.parametrize("paging", [{}, {"startIndex": 2}, {"count": 0}])
def test_the_unique_equality_shortcut_answers_what_the_filter_parser_does(
    scim, five_users, other_scim, filter_text, paging
):
    # IdPs send userName/externalId eq before every create; the view answers those without
    # the parser. A sortBy sends the same filter through the parser: both must agree.
    other_scim.post("/Users", new_user(9, userName="bob2@example.com", externalId="ext-c"))
    assert scim.post("/Users", new_user(8, externalId="true")).status_code == 201
    shortcut = scim.get("/Users", data={"filter": filter_text, **paging})
    parsed = scim.get("/Users", data={"filter": filter_text, "sortBy": "id", **paging})
    assert shortcut.status_code == parsed.status_code, shortcut.content
    assert shortcut.status_code in (200, 400), shortcut.content
    assert shortcut.json() == parsed.json()


def test_a_quoted_true_is_text_and_active_takes_entras_capitalised_booleans(scim, five_users):
    assert scim.post("/Users", new_user(8, externalId="true")).status_code == 201
    assert len(usernames(scim.get("/Users", data={"filter": 'externalId eq "true"'}))) == 1
    assert usernames(scim.get("/Users", data={"filter": 'active eq "False"'})) == [
        "carol@sample.org"
    ]


def test_an_equality_with_an_escaped_quote_goes_through_the_parser(scim, five_users):
    filter_text = 'userName eq "bob\\"@example.com"'
    shortcut = scim.get("/Users", data={"filter": filter_text})
    parsed = scim.get("/Users", data={"filter": filter_text, "sortBy": "id"})
    assert (shortcut.status_code, shortcut.json()) == (parsed.status_code, parsed.json())
    assert shortcut.status_code == 200, shortcut.content
    assert shortcut.json()["totalResults"] == 0


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        # RFC 7644 §3.4.2.2: a filter's value is a JSON string, escapes and all.
        ('displayName eq "Dana \\"D\\" Scully"', ["dana@example.com"]),
        ('displayName co "\\"D\\""', ["dana@example.com"]),
        ('displayName eq "Jos\\u00e9 \\\\ Ortiz" or userName eq "x\\"y"', ["jose@example.com"]),
        ('userName eq "jose@example.com" and displayName ew "\\\\ Ortiz"', ["jose@example.com"]),
    ],
)
def test_filter_values_are_json_strings_with_escapes(scim, filter_text, expected):
    created(scim, new_user(1, userName="dana@example.com", displayName='Dana "D" Scully'))
    created(scim, new_user(2, userName="jose@example.com", displayName="José \\ Ortiz"))
    assert usernames(scim.get("/Users", data={"filter": filter_text})) == expected


def test_an_id_that_is_no_uuid_names_no_user(scim, five_users):
    assert usernames(scim.get("/Users", data={"filter": 'id eq "not-a-uuid"'})) == []
    assert len(usernames(scim.get("/Users", data={"filter": 'id ne "zz"'}))) == 5


def test_a_filter_value_that_is_no_json_string_is_taken_as_written(scim):
    # A client that does not escape backslashes (Windows-style names) still finds the user.
    created(scim, new_user(1, displayName="CORP\\jdoe"))
    r = scim.get("/Users", data={"filter": 'displayName eq "CORP\\jdoe"'})
    assert usernames(r) == ["user1@example.com"]
    r = scim.get("/Users", data={"filter": 'displayName eq "CORP\\\\jdoe"'})  # JSON-escaped
    assert usernames(r) == ["user1@example.com"]


@pytest.mark.parametrize("filter_text", ['userName eq "\\u0000"', 'userName eq "\\ud800"'])
def test_a_filter_string_with_a_bad_escape_or_character_is_400(scim, filter_text):
    assert_scim_error(scim.get("/Users", data={"filter": filter_text}), 400, "invalidFilter")


def test_list_filter_on_last_modified(scim, five_users):
    later = timezone.now() + timedelta(hours=1)
    with time_machine.travel(later, tick=False):
        r = scim.patch(
            f"/Users/{five_users[3].provider_link.scim_id}",
            patch_ops({"op": "replace", "path": "title", "value": "Diver"}),
        )
        assert r.status_code == 200, r.content
    cutoff = (later - timedelta(minutes=1)).isoformat()
    r = scim.get("/Users", data={"filter": f'meta.lastModified gt "{cutoff}"'})
    assert usernames(r) == ["dave@example.com"]


@pytest.mark.parametrize(
    ("sort", "expected_first"),
    [
        ({"sortBy": "userName"}, "alice@example.com"),
        ({"sortBy": "userName", "sortOrder": "descending"}, "erin@sample.org"),
        ({"sortBy": "name.familyName", "sortOrder": "descending"}, "erin@sample.org"),
        ({"sortBy": "externalId", "sortOrder": "ascending"}, "alice@example.com"),
    ],
)
def test_list_sorts(scim, five_users, sort, expected_first):
    names = usernames(scim.get("/Users", data=sort))
    assert names[0] == expected_first
    assert names == sorted(names, reverse=sort.get("sortOrder") == "descending")


def test_sort_by_a_case_insensitive_attribute_ignores_case(scim):
    for n, given in ((1, "bob"), (2, "Alice"), (3, "carol"), (4, "Dave")):
        created(scim, new_user(n, name={"givenName": given, "familyName": "X"}))
    r = scim.get("/Users", data={"sortBy": "name.givenName"})
    assert [u["name"]["givenName"] for u in r.json()["Resources"]] == [
        "Alice", "bob", "carol", "Dave"
    ]  # fmt: skip


@pytest.mark.parametrize("query", [{}, {"filter": "userName pr"}])
def test_users_without_a_value_sort_last_ascending_and_first_descending(scim, query):
    # RFC 7644 §3.4.2.3; a missing title is stored as "", which sorts first by itself.
    for n, title in ((1, "Chief"), (2, None), (3, "Admiral"), (4, None)):
        created(scim, new_user(n, **({"title": title} if title else {})))
    titles = [
        resource.get("title")
        for resource in scim.get("/Users", data={"sortBy": "title", **query}).json()["Resources"]
    ]
    assert titles == ["Admiral", "Chief", None, None]
    r = scim.get("/Users", data={"sortBy": "title", "sortOrder": "descending", **query})
    assert [resource.get("title") for resource in r.json()["Resources"]] == [
        None, None, "Chief", "Admiral"
    ]  # fmt: skip
    r = scim.get("/Users", data={"sortBy": "meta.created", "sortOrder": "descending", **query})
    assert [resource["userName"] for resource in r.json()["Resources"]][0] == "user4@example.com"


def test_list_attributes_returns_only_those_and_id(scim, five_users):
    r = scim.get("/Users", data={"filter": 'userName eq "alice@example.com"',
                                 "attributes": "userName,name.givenName"})  # fmt: skip
    assert r.status_code == 200, r.content
    resource = r.json()["Resources"][0]
    assert set(resource) == {"id", "schemas", "userName", "name"}  # meta: returned by default
    assert resource["name"] == {"givenName": "Alice"}


def test_schemas_names_only_the_extensions_present(scim):
    # RFC 7643 §3: schemas names the schemas whose attributes the resource carries, after
    # attributes/excludedAttributes too.
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    bare = created(scim, new_user(1))
    rich = created(scim, new_user(2, **{enterprise: {"department": "Ops"}}))
    core = "urn:ietf:params:scim:schemas:core:2.0:User"
    r = scim.get(f"/Users/{bare.provider_link.scim_id}")
    assert r.json()["schemas"] == [core]
    r = scim.get(f"/Users/{rich.provider_link.scim_id}")
    assert r.json()["schemas"] == [core, enterprise]
    for query in ({"attributes": "userName"}, {"excludedAttributes": enterprise}):
        r = scim.get(f"/Users/{rich.provider_link.scim_id}", data=query)
        assert r.json()["schemas"] == [core], query
    r = scim.get(
        f"/Users/{rich.provider_link.scim_id}", data={"attributes": f"{enterprise}:department"}
    )
    assert r.json()["schemas"] == [core, enterprise]


def test_get_excluded_attributes_leaves_them_out(scim, five_users):
    uid = five_users[0].provider_link.scim_id
    r = scim.get(f"/Users/{uid}", data={"excludedAttributes": "emails,name,groups"})
    assert r.status_code == 200, r.content
    expected = expected_scim_user(scim, five_users[0])
    for key in ("emails", "name", "groups"):
        expected.pop(key)
    assert r.json() == expected


def test_okta_filter_before_create_finds_nothing_then_the_user(scim):
    from tests.scim.conftest import idp_request, payload

    r = idp_request(scim, "okta/filter_before_create")
    assert r.status_code == 200, r.content
    assert r.json() == {
        "schemas": [LIST_URN],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }
    user = created(scim, payload("okta/create_user"))
    r = idp_request(scim, "okta/filter_before_create")
    assert r.json()["Resources"] == [expected_scim_user(scim, user)]


# --- PUT ------------------------------------------------------------------------------------


def test_put_replaces_everything_and_clears_what_it_omits(scim):
    user = created(scim, new_user(1, title="Countess", displayName="Ada"))
    uid = str(user.provider_link.scim_id)
    replacement = new_user(1, name={"givenName": "Augusta"})
    replacement.pop("externalId")
    r = scim.put(f"/Users/{uid}", replacement)
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.given_name, user.family_name, user.title, user.display_name) == (
        "Augusta",
        "",
        "",
        "",
    )
    assert r.json() == expected_scim_user(scim, user)
    assert r["ETag"] == 'W/"2"'


def test_put_without_active_keeps_the_user_blocked(scim):
    user = created(scim, new_user(1, active=False))
    body = new_user(1)
    body.pop("active")
    r = scim.put(f"/Users/{user.provider_link.scim_id}", body)
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.status == UserStatus.BLOCKED


def test_null_attributes_in_a_resource_are_unassigned_as_if_left_out(scim):
    # RFC 7643 §2.5: null and unassigned are the same; a null active on POST is the default
    # (active), on PUT it keeps the current value, like an omitted one.
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    body = new_user(1, active=None, title=None, **{enterprise: None})
    r = scim.post("/Users", body)
    assert r.status_code == 201, r.content
    user = User.objects.get(username="user1@example.com")
    assert (user.status, user.title) == (UserStatus.ACTIVE, "")
    scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops({"op": "replace", "value": {"active": False, "title": "Countess"}}),
    )
    r = scim.put(f"/Users/{user.provider_link.scim_id}", body)
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.status, user.title) == (UserStatus.BLOCKED, "")


def test_put_of_the_same_state_writes_nothing(scim):
    user = created(scim, new_user(1, title="Countess"))
    before = snapshot()
    r = scim.put(f"/Users/{user.provider_link.scim_id}", new_user(1, title="Countess"))
    assert r.status_code == 200, r.content
    assert snapshot() == before
    assert r["ETag"] == 'W/"1"'


# --- PATCH ----------------------------------------------------------------------------------


def test_patch_add_replace_remove_with_paths(scim):
    user = created(scim, new_user(1, title="Countess"))
    uid = user.provider_link.scim_id
    r = scim.patch(
        f"/Users/{uid}",
        patch_ops(
            {"op": "add", "path": "displayName", "value": "Ada L."},
            {"op": "replace", "path": "name.givenName", "value": "Augusta"},
            {"op": "remove", "path": "title"},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:"
             "User:department", "value": "Engines"},
        ),
    )  # fmt: skip
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.display_name, user.given_name, user.title, user.department) == (
        "Ada L.",
        "Augusta",
        "",
        "Engines",
    )
    assert r.json() == expected_scim_user(scim, user)


def test_patch_without_path_sets_each_attribute_of_the_value(scim):
    user = created(scim, new_user(1))
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops(
            {
                "op": "replace",
                "value": {
                    "displayName": "Countess",
                    "name": {"givenName": "Augusta", "familyName": "King"},
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                        "division": "Engines"
                    },
                },
            }
        ),
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.display_name, user.given_name, user.family_name, user.division) == (
        "Countess",
        "Augusta",
        "King",
        "Engines",
    )


def test_patch_value_path_on_work_email(scim):
    user = created(scim, new_user(1))
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops({"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@b.com"}),
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.email == "a@b.com"


@pytest.mark.parametrize("op", ["add", "Add"])
def test_patch_add_of_only_home_email_and_address_keeps_the_work_ones(scim, op):
    # RFC 7644 §3.5.2.1: an add to a multi-valued attribute adds values; Gatehouse keeps the
    # work ones only, so a home email or address must not overwrite them (nor become "work").
    user = created(
        scim, new_user(1, addresses=[{"type": "work", "locality": "Paris", "country": "FR"}])
    )
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops(
            {"op": op, "path": "emails", "value": [{"value": "home@x.com", "type": "home"}]},
            {"op": op, "value": {"addresses": [{"locality": "Homeville", "type": "home"}]}},
        ),
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.email, user.locality, user.country) == ("user1@example.com", "Paris", "FR")
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops(
            {
                "op": op,
                "path": "emails",
                "value": [{"value": "h@x.com", "type": "home"}, {"value": "w@x.com"}],
            }
        ),
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.email == "w@x.com"


def test_patch_remove_whole_multi_valued_attribute_clears_it(scim):
    user = created(
        scim, new_user(1, addresses=[{"type": "work", "locality": "London", "country": "GB"}])
    )
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops({"op": "remove", "path": "addresses"}, {"op": "remove", "path": "emails"}),
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.locality, user.country, user.email) == ("", "", "")


def test_patch_remove_of_active_is_400_and_never_unblocks(scim):
    user = created(scim, new_user(1, active=False))
    before = snapshot()
    for path in ("active", "urn:ietf:params:scim:schemas:core:2.0:User:active"):
        r = scim.patch(
            f"/Users/{user.provider_link.scim_id}", patch_ops({"op": "remove", "path": path})
        )
        assert_scim_error(r, 400, "invalidValue")
    assert snapshot() == before


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "id", "value": "3d70e438-7653-4e44-95d1-471a2043fb45"},
        {"op": "remove", "path": "id"},
        {"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"},
        {"op": "add", "path": "groups", "value": [{"value": "x"}]},
        {"op": "replace", "value": {"id": "3d70e438-7653-4e44-95d1-471a2043fb45"}},
    ],
)
def test_patch_of_a_read_only_attribute_is_400_mutability(scim, operation):
    user = created(scim, new_user(1))
    before = snapshot()
    r = scim.patch(f"/Users/{user.provider_link.scim_id}", patch_ops(operation))
    assert_scim_error(r, 400, "mutability")
    assert snapshot() == before


def test_patch_resending_the_users_own_id_meta_and_groups_changes_only_the_rest(scim):
    user = created(scim, new_user(1))
    resource = scim.get(f"/Users/{user.provider_link.scim_id}").json()
    resource["title"] = "Countess"
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops(
            {"op": "replace", "value": resource},
            {"op": "replace", "path": "id", "value": resource["id"].upper()},
            {"op": "replace", "value": {"id": resource["id"].replace("-", "")}},
        ),
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.title == "Countess"


def test_patch_remove_name_clears_given_and_family_name(scim):
    user = created(scim, new_user(1))
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}", patch_ops({"op": "remove", "path": "name"})
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.given_name, user.family_name) == ("", "")


def test_patch_changing_two_attributes_writes_two_sync_rows_and_one_audit_row(scim):
    user = created(scim, new_user(1))
    sync_before = SyncLogEntry.objects.count()
    audit_before = AuditLogEntry.objects.count()
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops(
            {"op": "replace", "path": "title", "value": "Countess"},
            {"op": "replace", "path": "name.familyName", "value": "King"},
            {"op": "replace", "path": "name.givenName", "value": "Ada"},  # unchanged
        ),
    )
    assert r.status_code == 200, r.content
    rows = SyncLogEntry.objects.order_by("pk")[sync_before:]
    assert [(s.change_type, s.attribute, s.old_value, s.new_value) for s in rows] == [
        (SyncChange.ATTRIBUTE_UPDATED, "name.familyName", "Lovelace1", "King"),
        (SyncChange.ATTRIBUTE_UPDATED, "title", "", "Countess"),
    ]
    assert all(row.provider_id == scim.provider.pk for row in rows)
    audit = AuditLogEntry.objects.order_by("pk")[audit_before:]
    assert [(a.action, a.actor_label) for a in audit] == [
        ("external_attributes_changed", scim.provider.credential_username)
    ]
    assert r["ETag"] == 'W/"2"'


def test_patch_that_changes_nothing_writes_nothing(scim):
    user = created(scim, new_user(1, title="Countess"))
    before = snapshot()
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops(
            {"op": "replace", "path": "title", "value": "Countess"},
            {"op": "replace", "value": {"active": True}},
        ),
    )
    assert r.status_code == 200, r.content
    assert snapshot() == before


# --- DELETE ---------------------------------------------------------------------------------


def test_delete_blocks_schedules_deactivation_and_hides_the_user(scim):
    user = created(scim, new_user(1))
    uid = user.provider_link.scim_id
    r = scim.delete(f"/Users/{uid}")
    assert r.status_code == 204, r.content
    user.refresh_from_db()
    assert user.status == UserStatus.BLOCKED
    assert PendingDeactivation.objects.filter(user=user, state=DeactivationState.PENDING).exists()
    assert scim.get("/Users").json()["totalResults"] == 0
    assert_scim_error(scim.delete(f"/Users/{uid}"), 404)


# --- ETags ----------------------------------------------------------------------------------


def test_if_none_match_current_version_is_304(scim):
    user = created(scim, new_user(1))
    r = scim.get(f"/Users/{user.provider_link.scim_id}", HTTP_IF_NONE_MATCH='W/"1"')
    assert r.status_code == 304, r.content
    assert r["ETag"] == 'W/"1"'
    assert (r.content, r.get("Content-Type")) == (b"", None)  # RFC 7232 §4.1


def test_if_none_match_stale_version_returns_the_body(scim):
    user = created(scim, new_user(1))
    r = scim.get(f"/Users/{user.provider_link.scim_id}", HTTP_IF_NONE_MATCH='W/"0"')
    assert r.status_code == 200, r.content


def test_if_match_stale_version_is_412_and_changes_nothing(scim):
    user = created(scim, new_user(1))
    uid = user.provider_link.scim_id
    scim.patch(f"/Users/{uid}", patch_ops({"op": "replace", "path": "title", "value": "A"}))
    before = snapshot()
    stale = {"HTTP_IF_MATCH": 'W/"1"'}
    ops = patch_ops({"op": "replace", "path": "title", "value": "B"})
    assert_scim_error(scim.patch(f"/Users/{uid}", ops, **stale), 412)
    assert_scim_error(scim.put(f"/Users/{uid}", new_user(1, title="B"), **stale), 412)
    assert_scim_error(scim.delete(f"/Users/{uid}", **stale), 412)
    assert snapshot() == before


def test_if_match_current_version_applies(scim):
    user = created(scim, new_user(1))
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops({"op": "replace", "path": "title", "value": "A"}),
        HTTP_IF_MATCH='W/"1"',
    )
    assert r.status_code == 200, r.content
    assert r["ETag"] == 'W/"2"' == r.json()["meta"]["version"]


# --- lifecycle ------------------------------------------------------------------------------


def test_active_false_blocks_now_and_schedules_deactivation(scim):
    user = created(scim, new_user(1))
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        patch_ops({"op": "replace", "path": "active", "value": False}),
    )
    assert r.status_code == 200, r.content
    assert r.json()["active"] is False
    user.refresh_from_db()
    assert user.status == UserStatus.BLOCKED
    pending = PendingDeactivation.objects.get(user=user)
    assert pending.state == DeactivationState.PENDING
    assert pending.due_at - pending.created_at == scim.provider.deactivation_delay
    changes = set(
        SyncLogEntry.objects.filter(user_id=user.pk).values_list("change_type", flat=True)
    )
    assert {SyncChange.USER_BLOCKED, SyncChange.DEACTIVATION_SCHEDULED} <= changes


def test_active_true_within_the_delay_cancels_the_deactivation(scim):
    user = created(scim, new_user(1))
    uid = user.provider_link.scim_id
    scim.patch(f"/Users/{uid}", patch_ops({"op": "replace", "path": "active", "value": False}))
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=False):
        r = scim.patch(
            f"/Users/{uid}", patch_ops({"op": "replace", "path": "active", "value": True})
        )
    assert r.status_code == 200, r.content
    assert r.json()["active"] is True
    user.refresh_from_db()
    assert user.status == UserStatus.ACTIVE
    assert PendingDeactivation.objects.get(user=user).state == DeactivationState.CANCELLED


def test_active_false_resent_does_not_schedule_twice(scim):
    user = created(scim, new_user(1))
    uid = user.provider_link.scim_id
    ops = patch_ops({"op": "replace", "path": "active", "value": False})
    scim.patch(f"/Users/{uid}", ops)
    before = snapshot()
    r = scim.patch(f"/Users/{uid}", ops)
    assert r.status_code == 200, r.content
    assert snapshot() == before


def test_put_active_false_blocks_the_user(scim):
    user = created(scim, new_user(1))
    r = scim.put(f"/Users/{user.provider_link.scim_id}", new_user(1, active=False))
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.status == UserStatus.BLOCKED
    assert r.json() == expected_scim_user(scim, user)


def test_put_changing_attributes_and_deactivating_at_once_ends_as_answered(make_scim):
    # The attribute UPDATE and the status UPDATE of one row both go with the batched tail:
    # in order, so the row ends as the answer says (status, title, lastModified, ETag).
    client = make_scim("Immediate", "token", delay=timedelta(0))
    user = created(client, new_user(1))
    uid = user.provider_link.scim_id
    r = client.put(f"/Users/{uid}", new_user(1, active=False, title="Retired"))
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.status == UserStatus.DEACTIVATED and user.title == "Retired"
    assert r.json() == expected_scim_user(client, user)
    again = client.get(f"/Users/{uid}")
    assert again.json() == r.json() and again["ETag"] == r["ETag"]


def test_active_true_reactivates_a_deactivated_user(make_scim):
    client = make_scim("Immediate", "token", delay=timedelta(0))
    user = created(client, new_user(1))
    uid = user.provider_link.scim_id
    client.patch(f"/Users/{uid}", patch_ops({"op": "replace", "path": "active", "value": False}))
    user.refresh_from_db()
    assert user.status == UserStatus.DEACTIVATED
    r = client.patch(f"/Users/{uid}", patch_ops({"op": "replace", "path": "active", "value": True}))
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.status == UserStatus.ACTIVE


def test_recreate_after_delete_adopts_the_person_and_cancels_the_deactivation(scim):
    user = created(scim, new_user(1))
    assert scim.delete(f"/Users/{user.provider_link.scim_id}").status_code == 204
    sync_before = SyncLogEntry.objects.count()
    r = scim.post("/Users", new_user(1, title="Back"))
    assert r.status_code == 201, r.content
    user.refresh_from_db()
    assert user.status == UserStatus.ACTIVE
    assert user.title == "Back"
    assert PendingDeactivation.objects.get(user=user).state == DeactivationState.CANCELLED
    assert r.json() == expected_scim_user(scim, user)
    changes = list(
        SyncLogEntry.objects.order_by("pk")[sync_before:].values_list("change_type", flat=True)
    )
    assert SyncChange.USER_ADDED in changes


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def engineer(scim):
    return created(scim, new_user(1, **{ENTERPRISE: {"department": "D", "division": "V"}}))


def test_attributes_accepts_the_core_schema_prefix_and_extension_paths(scim, engineer):
    uid = engineer.provider_link.scim_id
    names = f"urn:ietf:params:scim:schemas:core:2.0:User:userName,{ENTERPRISE}:department"
    r = scim.get(f"/Users/{uid}", data={"attributes": names})
    assert r.status_code == 200, r.content
    body = r.json()
    assert set(body) == {"schemas", "id", "userName", ENTERPRISE}
    assert body[ENTERPRISE] == {"department": "D"}


def test_excluding_every_extension_attribute_leaves_the_extension_out(scim, engineer):
    uid = engineer.provider_link.scim_id
    names = f"{ENTERPRISE}:department,{ENTERPRISE}:division"
    body = scim.get(f"/Users/{uid}", data={"excludedAttributes": names}).json()
    assert ENTERPRISE not in body
    assert body["userName"] == "user1@example.com"


def test_excluding_a_sub_attribute_of_a_multi_valued_attribute(scim, engineer):
    uid = engineer.provider_link.scim_id
    body = scim.get(f"/Users/{uid}", data={"excludedAttributes": "emails.value"}).json()
    assert body["emails"] == [{"type": "work", "primary": True}]


def test_id_and_schemas_cannot_be_excluded_and_meta_can(scim, engineer):
    # RFC 7643 §3.1: id is "returned: always"; meta's sub-attributes are "returned: default".
    uid = engineer.provider_link.scim_id
    r = scim.get(f"/Users/{uid}", data={"excludedAttributes": "id,schemas,meta"})
    assert {"id", "schemas"} <= set(r.json()) and "meta" not in r.json()
    assert r["ETag"] == scim.get(f"/Users/{uid}").json()["meta"]["version"]
    r = scim.get(f"/Users/{uid}", data={"attributes": "userName,meta.version"})
    assert r.json()["meta"] == {"version": r["ETag"]}


def test_filter_on_an_email_type_that_is_not_kept_matches_nobody(scim, five_users):
    r = scim.get("/Users", data={"filter": 'emails[type eq "home"]'})
    assert usernames(r) == []


GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def test_a_users_version_changes_when_its_groups_do(scim):
    # The groups are part of the user's representation: joining one, leaving it, or its
    # rename must change meta.version, or If-None-Match keeps a stale copy (RFC 7644 §3.14).
    uid = scim.post("/Users", new_user(1)).json()["id"]
    versions = [scim.get(f"/Users/{uid}")["ETag"]]
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Ops", "members": [{"value": uid}]}
    gid = scim.post("/Groups", body).json()["id"]
    rename = {"op": "replace", "path": "displayName", "value": "Operations"}
    leave = {"op": "remove", "path": f'members[value eq "{uid}"]'}
    for operation in (rename, leave):
        r = scim.get(f"/Users/{uid}")
        versions.append(r["ETag"])
        assert r.json()["meta"]["version"] == r["ETag"]
        assert scim.get(f"/Users/{uid}", HTTP_IF_NONE_MATCH=r["ETag"]).status_code == 304
        assert scim.patch(f"/Groups/{gid}", patch_ops(operation)).status_code == 200
        assert scim.get(f"/Users/{uid}", HTTP_IF_NONE_MATCH=r["ETag"]).status_code == 200
        stale = scim.patch(
            f"/Users/{uid}",
            patch_ops({"op": "replace", "path": "title", "value": "x"}),
            HTTP_IF_MATCH=r["ETag"],
        )
        assert stale.status_code == 412, stale.content
    versions.append(scim.get(f"/Users/{uid}")["ETag"])
    assert len(set(versions)) == 3 and versions[0] == versions[-1] == 'W/"1"'


def test_every_read_of_a_user_lists_its_groups_in_the_order_they_were_pushed(scim):
    # The groups come in the same statement as the user (selectors.user_groups_sql); SQLite
    # cannot order inside json_group_array, so they are sorted by group afterwards.
    r = scim.post("/Users", new_user(1))
    assert r.status_code == 201, r.content
    uid, username = r.json()["id"], r.json()["userName"]
    assert r.json()["groups"] == []
    group_ids = []
    for name in ("Zeta", "Alpha", "Mu"):
        group = {"schemas": [GROUP_SCHEMA], "displayName": name, "members": [{"value": uid}]}
        g = scim.post("/Groups", group)
        assert g.status_code == 201, g.content
        group_ids.append(g.json()["id"])
    base = scim.provider.base_url
    expected = [
        {"value": gid, "$ref": f"{base}/Groups/{gid}", "display": name, "type": "direct"}
        for gid, name in zip(group_ids, ("Zeta", "Alpha", "Mu"), strict=True)
    ]
    reads = [
        scim.get(f"/Users/{uid}").json(),
        scim.get("/Users").json()["Resources"][0],
        scim.get("/Users", data={"filter": f'userName eq "{username}"'}).json()["Resources"][0],
        scim.get("/Users", data={"filter": 'userName sw "user"'}).json()["Resources"][0],
        scim.patch(
            f"/Users/{uid}", patch_ops({"op": "replace", "path": "title", "value": "Boss"})
        ).json(),
    ]
    for body in reads:
        assert body["groups"] == expected
    user = User.objects.get(username=username)
    assert reads[-1] == expected_scim_user(scim, user, groups=expected)


# --- emails and addresses: names in any case, adds that bring part of an entry ---------------


def _uid(user) -> str:
    return str(user.provider_link.scim_id)


def test_sub_attribute_names_of_emails_and_addresses_are_case_insensitive(scim):
    # RFC 7643 §2.1. "Value" and "Locality" were not read, and the email was lost.
    body = new_user(
        1,
        emails=[{"Value": "Ada@Example.com", "Type": "work", "Primary": True}],
        Addresses=[{"Locality": "Paris", "COUNTRY": "FR", "type": "work"}],
    )
    r = scim.post("/Users", body)
    assert r.status_code == 201, r.content
    assert r.json()["emails"] == [{"value": "Ada@Example.com", "type": "work", "primary": True}]
    assert r.json()["addresses"][0]["locality"] == "Paris"
    assert r.json()["addresses"][0]["country"] == "FR"
    r = scim.patch(
        f"/Users/{r.json()['id']}",
        patch_ops({"op": "add", "path": "emails", "value": [{"VALUE": "new@example.com"}]}),
    )
    assert r.json()["emails"][0]["value"] == "new@example.com"


def test_an_add_of_part_of_an_entry_keeps_the_rest(scim):
    user = created(
        scim, new_user(1, addresses=[{"type": "work", "locality": "Paris", "country": "FR"}])
    )
    before = snapshot()
    # postalCode is accepted and not kept: nothing changes, nothing is lost.
    r = scim.patch(
        f"/Users/{_uid(user)}",
        patch_ops(
            {"op": "add", "path": "addresses", "value": [{"type": "work", "postalCode": "75001"}]}
        ),
    )
    assert r.status_code == 200, r.content
    assert r.json()["addresses"][0] == {
        "type": "work", "primary": True, "locality": "Paris", "country": "FR"
    }  # fmt: skip
    assert snapshot() == before
    r = scim.patch(
        f"/Users/{_uid(user)}",
        patch_ops({"op": "add", "path": "addresses", "value": [{"type": "work", "region": "IDF"}]}),
    )
    assert r.json()["addresses"][0] == {
        "type": "work", "primary": True, "locality": "Paris", "region": "IDF", "country": "FR"
    }  # fmt: skip
    # An email entry without a value brings nothing.
    r = scim.patch(
        f"/Users/{_uid(user)}",
        patch_ops({"op": "add", "path": "emails", "value": [{"type": "work"}]}),
    )
    assert r.json()["emails"][0]["value"] == "user1@example.com"


def test_a_replace_of_the_whole_attribute_states_the_whole_entry(scim):
    user = created(
        scim, new_user(1, addresses=[{"type": "work", "locality": "Paris", "country": "FR"}])
    )
    r = scim.patch(
        f"/Users/{_uid(user)}",
        patch_ops(
            {"op": "replace", "path": "addresses", "value": [{"type": "work", "region": "IDF"}]}
        ),
    )
    assert r.json()["addresses"] == [{"type": "work", "primary": True, "region": "IDF"}]


def test_a_deleted_manager_is_released_by_its_reports_and_stays_released(scim):
    boss = scim.post("/Users", new_user(1)).json()
    enterprise = {ENTERPRISE: {"manager": {"value": boss["id"]}}}
    report = scim.post("/Users", new_user(2, **enterprise)).json()
    assert report[ENTERPRISE]["manager"]["value"] == boss["id"]
    etag = report["meta"]["version"]

    assert scim.delete(f"/Users/{boss['id']}").status_code == 204
    r = scim.get(f"/Users/{report['id']}", HTTP_IF_NONE_MATCH=etag)
    assert r.status_code == 200  # not a 304 over a copy that still names the manager
    assert ENTERPRISE not in r.json()
    assert r["ETag"] == r.json()["meta"]["version"] != etag
    assert r.json()["meta"]["lastModified"] > report["meta"]["lastModified"]

    # The release is the report's change, logged as any manager change (PRODUCT.md: manager
    # values carry the user id).
    report_user = User.objects.get(username="user2@example.com")
    row = SyncLogEntry.objects.get(
        user_id=report_user.pk, attribute__icontains="manager", change_type="attribute_updated"
    )
    boss_user = User.objects.get(username="user1@example.com")
    assert (row.change_type, row.old_value, row.new_value) == (
        SyncChange.ATTRIBUTE_UPDATED,
        str(boss_user.pk),
        "",
    )
    assert report_user.manager_id is None

    # The same userName pushed again (the person back, or a new one given the name) is
    # nobody's manager until a request says so: the report's answer does not change.
    etag = r["ETag"]
    assert scim.post("/Users", new_user(1)).status_code == 201  # the manager, taken back
    r = scim.get(f"/Users/{report['id']}", HTTP_IF_NONE_MATCH=etag)
    assert r.status_code == 304
    r = scim.get(f"/Users/{report['id']}")
    assert ENTERPRISE not in r.json()


def test_a_manager_named_by_its_ref_alone(scim, other_scim):
    # RFC 7643 §4.3: value and $ref both name the manager; a $ref alone was dropped, and a PUT
    # carrying one cleared the manager.
    boss = scim.post("/Users", new_user(1)).json()
    ref = boss["meta"]["location"]
    r = scim.post("/Users", new_user(2, **{ENTERPRISE: {"manager": {"$ref": ref}}}))
    assert r.json()[ENTERPRISE]["manager"]["value"] == boss["id"]
    body = new_user(2, **{ENTERPRISE: {"manager": {"value": "", "$ref": ref}}})  # "" is none
    assert scim.put(f"/Users/{r.json()['id']}", body).json()[ENTERPRISE]["manager"] == {
        "value": boss["id"],
        "$ref": ref,
    }
    foreign = other_scim.post("/Users", new_user(3)).json()["meta"]["location"]
    before = snapshot()
    for bad in (foreign, ref.replace("/Users/", "/Groups/"), 5):
        body = new_user(2, **{ENTERPRISE: {"manager": {"$ref": bad}}})
        assert_scim_error(scim.put(f"/Users/{r.json()['id']}", body), 400, "invalidValue")
    assert snapshot() == before


def test_an_empty_ref_names_no_manager_and_a_ref_may_carry_a_query(scim):
    boss = scim.post("/Users", new_user(1)).json()
    ref = boss["meta"]["location"] + "?attributes=id"
    r = scim.post("/Users", new_user(2, **{ENTERPRISE: {"manager": {"$ref": ref}}}))
    assert r.json()[ENTERPRISE]["manager"]["value"] == boss["id"]
    body = new_user(2, **{ENTERPRISE: {"manager": {"displayName": "Boss", "$ref": ""}}})
    r = scim.put(f"/Users/{r.json()['id']}", body)
    assert r.status_code == 200 and ENTERPRISE not in r.json()  # cleared, as before $ref


def test_a_manager_named_by_scim_1_1_s_manager_id(scim):
    # SCIM 1.1's enterprise manager is {"managerId", "displayName"} (OneLogin's templates):
    # it was read as no manager, and a PUT cleared the one set.
    boss = scim.post("/Users", new_user(1)).json()

    def body(urn):
        return new_user(2, **{urn: {"manager": {"managerId": boss["id"], "displayName": "B"}}})

    r = scim.post("/Users", body(ENTERPRISE))
    assert r.json()[ENTERPRISE]["manager"]["value"] == boss["id"], r.content
    r = scim.put(f"/Users/{r.json()['id']}", body("urn:scim:schemas:extension:enterprise:1.0"))
    assert r.json()[ENTERPRISE]["manager"]["value"] == boss["id"], r.content
    uid = r.json()["id"]
    for operation in (
        {"op": "replace", "path": f"{ENTERPRISE}:manager.managerId", "value": boss["id"]},
        {"op": "replace", "path": f"{ENTERPRISE}:manager",
         "value": {"value": "", "managerId": boss["id"]}},
    ):  # fmt: skip
        scim.patch(f"/Users/{uid}", patch_ops({"op": "remove", "path": f"{ENTERPRISE}:manager"}))
        r = scim.patch(f"/Users/{uid}", patch_ops(operation))
        assert r.json()[ENTERPRISE]["manager"]["value"] == boss["id"], (operation, r.content)


def test_a_remove_naming_an_email_as_text_removes_only_that_one(scim):
    user = created(scim, new_user(1))
    url = f"/Users/{_uid(user)}"
    r = scim.patch(url, patch_ops({"op": "remove", "path": "emails", "value": "x@example.com"}))
    assert r.json()["emails"][0]["value"] == "user1@example.com"
    r = scim.patch(url, patch_ops({"op": "remove", "path": "emails", "value": "USER1@example.com"}))
    assert "emails" not in r.json()


def test_a_user_deleted_between_the_read_and_the_answer_is_404(scim, monkeypatch):
    # A GET locks nothing; a user with a manager is answered from a second read, which a
    # concurrent DELETE could leave empty: an IndexError, a 500, about once in 500 GETs.
    from provisioning.scim import user_rows

    boss = scim.post("/Users", new_user(1)).json()
    report = scim.post("/Users", new_user(2, **{ENTERPRISE: {"manager": {"value": boss["id"]}}}))
    monkeypatch.setattr(user_rows, "row_from_link", lambda *args: None)
    monkeypatch.setattr(user_rows, "rows_by_ids", lambda ids: [])
    assert_scim_error(scim.get(f"/Users/{report.json()['id']}"), 404)


def test_a_manager_taken_back_releases_reports_an_older_delete_left_naming_it(scim):
    # Before DELETE released reports, it left them naming the hidden manager.
    boss = scim.post("/Users", new_user(1)).json()
    report = scim.post("/Users", new_user(2)).json()
    assert scim.delete(f"/Users/{boss['id']}").status_code == 204
    boss_user = User.objects.get(username="user1@example.com")
    User.objects.filter(username="user2@example.com").update(manager=boss_user)
    assert scim.post("/Users", new_user(1)).status_code == 201
    assert ENTERPRISE not in scim.get(f"/Users/{report['id']}").json()
    assert User.objects.get(username="user2@example.com").manager_id is None


def test_a_user_taken_back_logs_as_a_create_and_what_the_push_cleared(scim):
    created_user = scim.post("/Users", new_user(1, title="CTO", userType="Staff")).json()
    assert scim.delete(f"/Users/{created_user['id']}").status_code == 204
    mark = SyncLogEntry.objects.order_by("-id").values_list("id", flat=True).first()
    again = scim.post("/Users", new_user(1, title="CEO"))  # no userType now
    assert again.status_code == 201, again.content
    assert again.json()["externalId"] == "ext-1"
    # Added to the provider again: every value pushed, as a create logs them ...
    rows = SyncLogEntry.objects.filter(id__gt=mark, change_type="user_added").order_by("id")
    assert list(rows.values_list("attribute", "old_value", "new_value")) == [
        ("userName", "", "user1@example.com"),
        ("name.givenName", "", "Ada"),
        ("name.familyName", "", "Lovelace1"),
        ("title", "", "CEO"),
        ("emails.value", "", "user1@example.com"),
        ("externalId", "", "ext-1"),
    ]
    # ... and what the push cleared of the person kept since the DELETE.
    rows = SyncLogEntry.objects.filter(id__gt=mark, change_type="attribute_updated")
    assert list(rows.values_list("attribute", "old_value", "new_value")) == [
        ("userType", "Staff", "")
    ]


def test_a_user_taken_back_with_another_user_s_external_id_is_409(scim):
    created_user = scim.post("/Users", new_user(1)).json()
    assert scim.delete(f"/Users/{created_user['id']}").status_code == 204
    assert scim.post("/Users", new_user(2)).status_code == 201
    before = snapshot()
    assert_scim_error(scim.post("/Users", new_user(1, externalId="ext-2")), 409, "uniqueness")
    assert snapshot() == before


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "addresses", "value": []},
        {"op": "replace", "value": {"addresses": []}},
        {"op": "replace", "path": "addresses", "value": None},
        {"op": "replace", "value": {"addresses": None}},
    ],
)
def test_an_empty_or_null_address_list_clears_the_whole_address(scim, operation):
    address = {"type": "work", "locality": "Paris", "region": "IDF", "country": "FR"}
    user = created(scim, new_user(1, addresses=[address]))
    r = scim.patch(f"/Users/{_uid(user)}", patch_ops(operation))
    assert r.status_code == 200, r.content
    assert "addresses" not in r.json()  # region and country too, not only the locality


@pytest.mark.parametrize("path", ["name", "emails", ENTERPRISE])
def test_a_replace_with_null_clears_a_complex_attribute_or_an_extension(scim, path):
    body = {ENTERPRISE: {"department": "R&D", "employeeNumber": "7"}}
    operations = [
        {"op": "replace", "path": path, "value": None},
        {"op": "replace", "value": {path: None}},  # the same, path-less
    ]
    for n, operation in enumerate(operations, start=1):
        user = created(scim, new_user(n, **body))
        assert path in scim.get(f"/Users/{_uid(user)}").json()
        r = scim.patch(f"/Users/{_uid(user)}", patch_ops(operation))
        assert r.status_code == 200, r.content
        assert path not in r.json()  # it was a 200 that changed nothing


def test_an_email_selected_by_its_value_in_a_patch_path(scim):
    user = created(scim, new_user(1))  # user1@example.com
    url = f"/Users/{_uid(user)}"
    # Another value selects nothing: a remove removes nothing, a replace has no target.
    r = scim.patch(url, patch_ops({"op": "remove", "path": 'emails[value eq "x@example.com"]'}))
    assert r.json()["emails"][0]["value"] == "user1@example.com"
    path = 'emails[value eq "x@example.com"].value'
    r = scim.patch(url, patch_ops({"op": "replace", "path": path, "value": "y@example.com"}))
    assert_scim_error(r, 400, "noTarget")
    # The kept one, in any case, is selected.
    path = 'emails[value eq "USER1@example.com"].value'
    r = scim.patch(url, patch_ops({"op": "replace", "path": path, "value": "new@example.com"}))
    assert r.json()["emails"][0]["value"] == "new@example.com"
    r = scim.patch(url, patch_ops({"op": "remove", "path": 'emails[value eq "new@example.com"]'}))
    assert "emails" not in r.json()


@pytest.mark.parametrize(
    ("path", "changed"),
    [
        ('emails[type eq "work" and primary eq true].value', True),
        ('emails[type eq "work" or type eq "other"].value', True),
        ('emails[primary eq "True" and not (type eq "home")].value', True),
        ('emails[type eq "home" and primary eq true].value', False),  # not kept: ignored
        ('emails[type eq "work" and primary eq false].value', False),
    ],
)
def test_a_patch_path_takes_any_value_filter_on_the_kept_email(scim, path, changed):
    # RFC 7644 §3.5.2: a valuePath holds any valFilter, and/or/not included; an Entra
    # mapping edited to one was a 400 on every update of every user.
    user = created(scim, new_user(1))
    r = scim.patch(
        f"/Users/{_uid(user)}",
        patch_ops({"op": "Replace", "path": path, "value": "new@example.com"}),
    )
    assert r.status_code == 200, r.content
    expected = "new@example.com" if changed else "user1@example.com"
    assert r.json()["emails"][0]["value"] == expected


def test_a_compound_value_filter_on_the_kept_values(scim):
    user = created(scim, new_user(1, addresses=[{"type": "work", "locality": "Oslo"}]))
    url = f"/Users/{_uid(user)}"
    # The value selects the kept entry in any case; another value selects nothing.
    path = 'emails[type eq "work" and value eq "USER1@example.com"].value'
    r = scim.patch(url, patch_ops({"op": "replace", "path": path, "value": "b@example.com"}))
    assert r.json()["emails"][0]["value"] == "b@example.com"
    path = 'emails[type eq "work" and value eq "x@example.com"]'
    r = scim.patch(url, patch_ops({"op": "remove", "path": path}))
    assert r.json()["emails"][0]["value"] == "b@example.com"
    r = scim.patch(url, patch_ops({"op": "replace", "path": path + ".value", "value": "c@x.io"}))
    assert_scim_error(r, 400, "noTarget")
    path = 'addresses[type eq "work" and locality sw "os"].locality'
    r = scim.patch(url, patch_ops({"op": "replace", "path": path, "value": "Bergen"}))
    assert r.json()["addresses"][0]["locality"] == "Bergen"
    r = scim.patch(url, patch_ops({"op": "remove", "path": 'addresses[locality eq "Bergen"]'}))
    assert "addresses" not in r.json()


def test_a_compound_value_filter_creates_the_kept_email_when_there_is_none(scim):
    user = created(scim, new_user(1, emails=[]))
    path = 'emails[type eq "work" and primary eq true].value'
    r = scim.patch(
        f"/Users/{_uid(user)}", patch_ops({"op": "add", "path": path, "value": "w@example.com"})
    )
    assert r.json()["emails"] == [{"value": "w@example.com", "type": "work", "primary": True}]


@pytest.mark.parametrize(
    "path",
    [
        'emails[type eq "work" and (value eq "a"].value',  # unbalanced
        'emails[type xx "work" and primary eq true].value',  # no such operator
        'emails[name.givenName eq "a" and type eq "work"].value',  # not a sub-attribute
    ],
)
def test_a_malformed_compound_value_filter_is_invalid_path(scim, path):
    user = created(scim, new_user(1))
    before = snapshot()
    r = scim.patch(
        f"/Users/{_uid(user)}", patch_ops({"op": "replace", "path": path, "value": "n@example.com"})
    )
    assert_scim_error(r, 400, "invalidPath")
    assert snapshot() == before


def test_a_remove_naming_its_values_removes_the_kept_entry_only_when_named(scim):
    # Entra's shape for members ("value": [{"value": …}]) on emails and addresses: a value
    # that is not the kept one removes nothing, as for a member that is not in the group.
    user = created(scim, new_user(1, addresses=[{"type": "work", "locality": "Oslo"}]))
    url = f"/Users/{_uid(user)}"
    before = snapshot()
    for operation in [
        {"op": "Remove", "path": "emails", "value": [{"value": "else@example.com"}]},
        {"op": "Remove", "path": 'emails[type eq "work"]', "value": [{"value": "x@y.io"}]},
        {"op": "Remove", "path": 'emails[type eq "work"].value', "value": "x@y.io"},
        {"op": "Remove", "path": "emails", "value": [{"type": "home", "value": "a@b.io"}]},
        {"op": "Remove", "path": "addresses", "value": [{"type": "work", "locality": "Rome"}]},
    ]:
        r = scim.patch(url, patch_ops(operation))
        assert r.status_code == 200, (operation, r.content)
    assert snapshot() == before
    r = scim.patch(url, patch_ops({"op": "Remove", "path": "emails",
                                   "value": [{"value": "USER1@example.com"}]}))  # fmt: skip
    assert "emails" not in r.json()
    r = scim.patch(url, patch_ops({"op": "Remove", "path": "addresses",
                                   "value": [{"locality": "oslo"}]}))  # fmt: skip
    assert "addresses" not in r.json()


def test_a_sub_attribute_no_value_has_is_left_out_not_rendered_empty(scim):
    user = created(scim, new_user(1))
    r = scim.get(f"/Users/{_uid(user)}?attributes=emails.bogus,userName")
    assert "emails" not in r.json() and r.json()["userName"] == "user1@example.com"
    r = scim.get(f"/Users/{_uid(user)}?attributes=emails.value")
    assert r.json()["emails"] == [{"value": "user1@example.com"}]
    r = scim.get(f"/Users/{_uid(user)}?excludedAttributes=emails.value,emails.type,emails.primary")
    assert "emails" not in r.json()


def test_the_core_schema_urn_names_all_core_attributes(scim):
    body = new_user(1, title="CTO", **{ENTERPRISE: {"department": "R&D"}})
    user = created(scim, body)
    r = scim.get(f"/Users/{_uid(user)}?attributes={CORE_USER_URN}")
    assert r.json()["title"] == "CTO" and ENTERPRISE not in r.json()  # RFC 7644 §3.10
    r = scim.get(f"/Users/{_uid(user)}?excludedAttributes={CORE_USER_URN}")
    assert "title" not in r.json() and r.json()[ENTERPRISE] == {"department": "R&D"}
    assert r.json()["id"] == _uid(user)


def test_another_resource_s_core_urn_names_nothing_here(scim):
    user = created(scim, new_user(1, title="CTO"))
    group_urn = "urn:ietf:params:scim:schemas:core:2.0:Group"
    r = scim.get(f"/Users/{_uid(user)}?attributes={group_urn}")
    assert "title" not in r.json() and r.json()["id"] == _uid(user)


def test_an_empty_email_value_selects_no_email(scim):
    user = created(scim, new_user(1, emails=[]))
    path = 'emails[value eq ""].value'
    r = scim.patch(
        f"/Users/{_uid(user)}",
        patch_ops({"op": "replace", "path": path, "value": "x@example.com"}),
    )
    assert_scim_error(r, 400, "noTarget")
