"""SCIM Groups (RFC 7643 §4.2, RFC 7644 §3): create, read, list, PUT, PATCH in the shapes
Okta and Entra send, DELETE; membership never drifts silently."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from identity.models import Organization, User
from provisioning import group_sync
from provisioning.models import GroupMembership, ProviderUser, ScimGroup
from synclog.models import AuditLogEntry, SyncLogEntry
from tests.identity.factories import UserFactory
from tests.scim.conftest import new_user, payload

pytestmark = pytest.mark.django_db

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


# --- helpers --------------------------------------------------------------------------------


def filled(name: str, **values) -> dict:
    """A stored IdP payload with its ``{placeholders}`` replaced by this test's ids."""
    text = json.dumps(payload(name))
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return json.loads(text)


def patch_body(*operations) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def make_users(scim, count: int, first: int = 1) -> list[str]:
    ids = []
    for n in range(first, first + count):
        r = scim.post("/Users", new_user(n))
        assert r.status_code == 201, r.content
        ids.append(r.json()["id"])
    return ids


def make_group(scim, name: str = "Engineering", members=(), **extra) -> dict:
    body = {"schemas": [GROUP], "displayName": name, **extra}
    if members:
        body["members"] = [{"value": m} for m in members]
    r = scim.post("/Groups", body)
    assert r.status_code == 201, r.content
    return r.json()


def member(scim, scim_id: str) -> dict:
    return {
        "value": scim_id,
        "$ref": f"{scim.provider.base_url}/Users/{scim_id}",
        "type": "User",
    }


def expected_group(scim, scim_id: str, members=()) -> dict:
    group = ScimGroup.objects.get(scim_id=scim_id)
    body = {"schemas": [GROUP], "id": scim_id}
    if group.external_id:
        body["externalId"] = group.external_id
    body["displayName"] = group.display_name
    if members:
        body["members"] = [member(scim, m) for m in members]
    body["meta"] = {
        "resourceType": "Group",
        "created": group.created_at.isoformat(),
        "lastModified": group.updated_at.isoformat(),
        "location": f"{scim.provider.base_url}/Groups/{scim_id}",
        "version": f'W/"{group.version}"',
    }
    return body


def member_ids(scim_id: str) -> list[str]:
    return [
        str(link)
        for link in GroupMembership.objects.filter(group__scim_id=scim_id)
        .order_by("id")
        .values_list("user__provider_link__scim_id", flat=True)
    ]


def rows_after(mark: int) -> list[tuple]:
    """The sync-log rows written after ``mark`` (the highest id before the request)."""
    return [
        (r.change_type, r.user_label, r.attribute, r.old_value, r.new_value)
        for r in SyncLogEntry.objects.filter(id__gt=mark).order_by("id")
    ]


def last_row_id() -> int:
    return SyncLogEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


def snapshot() -> tuple:
    """Everything a rejected group request must leave as it was."""
    return (
        sorted(GroupMembership.objects.values_list("group_id", "user_id")),
        sorted(ScimGroup.objects.values_list("id", "display_name", "external_id", "version")),
        SyncLogEntry.objects.count(),
        AuditLogEntry.objects.count(),
    )


def username(scim_id: str) -> str:
    return ProviderUser.objects.get(scim_id=scim_id).user.username


def assert_error(r, status: int, scim_type: str | None, *fragments: str) -> None:
    assert r.status_code == status, r.content
    body = r.json()
    assert body["schemas"] == [ERROR], body
    assert body["status"] == str(status), body
    assert body.get("scimType") == scim_type, body
    for fragment in fragments:
        assert fragment in body["detail"], body


# --- create ---------------------------------------------------------------------------------


def test_create_group_with_members_returns_whole_body_location_etag_and_logs(scim):
    alice, bob = make_users(scim, 2)
    mark = last_row_id()
    r = scim.post(
        "/Groups",
        {
            "schemas": [GROUP],
            "displayName": "Engineering",
            "externalId": "okta-grp-1",
            # Sub-attribute names in any case, as every SCIM name (PingOne, Entra).
            "members": [{"value": alice, "display": "x"}, {"Value": bob}],
        },
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body == expected_group(scim, body["id"], [alice, bob])
    assert body["meta"]["version"] == 'W/"1"'
    assert r["Location"] == f"{scim.provider.base_url}/Groups/{body['id']}"
    assert r["ETag"] == 'W/"1"'
    assert rows_after(mark) == [
        ("group_added", "Engineering", "displayName", "", "Engineering"),
        ("group_added", "Engineering", "externalId", "", "okta-grp-1"),
        ("group_membership_changed", username(alice), "groups", "", "Engineering"),
        ("group_membership_changed", username(bob), "groups", "", "Engineering"),
    ]
    row = SyncLogEntry.objects.get(id__gt=mark, user_label=username(alice))
    assert row.provider_id == scim.provider.pk
    assert row.provider_label == scim.provider.name
    assert row.user_id == User.objects.get(username=username(alice)).pk
    assert row.request_id
    audit = AuditLogEntry.objects.get(action="group_added")
    assert audit.actor_label == scim.provider.credential_username
    assert audit.target_label == "Engineering"


def test_okta_create_group_payload(scim):
    r = scim.post("/Groups", payload("okta/group_create"))
    assert r.status_code == 201, r.content
    assert r.json() == expected_group(scim, r.json()["id"])


def test_entra_create_group_payload_keeps_external_id(scim):
    r = scim.post("/Groups", payload("entra/group_create"))
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    assert body == expected_group(scim, body["id"])


def test_create_group_without_display_name_is_400_and_writes_nothing(scim):
    before = snapshot()
    r = scim.post("/Groups", {"schemas": [GROUP], "members": []})
    assert_error(r, 400, "invalidValue", "displayName")
    assert snapshot() == before


def test_create_group_with_unknown_member_is_400_and_creates_nothing(scim):
    (alice,) = make_users(scim, 1)
    unknown = "0b7e8a4c-3d8e-4d6a-9c1e-2f1f9d0a7b11"
    before = snapshot()
    r = scim.post(
        "/Groups",
        {"displayName": "Eng", "members": [{"value": alice}, {"value": unknown}]},
    )
    assert_error(r, 400, "invalidValue", unknown)
    assert snapshot() == before


# --- read and list --------------------------------------------------------------------------


def test_get_group_returns_whole_body_and_etag(scim):
    (alice,) = make_users(scim, 1)
    group = make_group(scim, members=[alice])
    r = scim.get(f"/Groups/{group['id']}")
    assert r.status_code == 200, r.content
    assert r.json() == expected_group(scim, group["id"], [alice])
    assert r["ETag"] == 'W/"1"'


def test_get_with_current_if_none_match_is_304(scim):
    group = make_group(scim)
    r = scim.get(f"/Groups/{group['id']}", HTTP_IF_NONE_MATCH='W/"1"')
    assert r.status_code == 304, r.content
    assert r["ETag"] == 'W/"1"'
    r = scim.get(f"/Groups/{group['id']}", HTTP_IF_NONE_MATCH='W/"0"')
    assert r.status_code == 200, r.content


def test_get_unknown_or_malformed_group_id_is_404(scim):
    assert_error(scim.get("/Groups/0b7e8a4c-3d8e-4d6a-9c1e-2f1f9d0a7b11"), 404, None)
    assert_error(scim.get("/Groups/not-a-uuid"), 404, None)


def test_okta_filter_display_name_eq_finds_the_group_case_insensitively(scim):
    group = make_group(scim, "Engineering")
    make_group(scim, "Sales")
    r = scim.get('/Groups?filter=displayName eq "engineering"')
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["totalResults"] == 1, body
    assert body["Resources"] == [expected_group(scim, group["id"])]
    r = scim.get('/Groups?filter=displayName eq "Marketing"')
    assert r.status_code == 200, r.content
    assert r.json()["totalResults"] == 0
    assert r.json()["Resources"] == []


def test_filter_by_external_id_and_id(scim):
    group = make_group(scim, "Engineering", externalId="ext-eng")
    make_group(scim, "Sales", externalId="ext-sales")
    r = scim.get('/Groups?filter=externalId eq "ext-eng"')
    assert [g["id"] for g in r.json()["Resources"]] == [group["id"]], r.content
    r = scim.get(f'/Groups?filter=id eq "{group["id"]}"')
    assert [g["id"] for g in r.json()["Resources"]] == [group["id"]], r.content


def test_filter_by_member_value_in_both_shapes(scim):
    alice, bob = make_users(scim, 2)
    eng = make_group(scim, "Engineering", members=[alice, bob])
    sales = make_group(scim, "Sales", members=[alice])
    for text in (f'members[value eq "{bob}"]', f'members.value eq "{bob}"'):
        r = scim.get(f"/Groups?filter={text}")
        assert r.status_code == 200, r.content
        assert [g["id"] for g in r.json()["Resources"]] == [eng["id"]], r.content
    r = scim.get(f'/Groups?filter=members[value eq "{alice}"]')
    assert r.json()["totalResults"] == 2, r.content
    assert [g["id"] for g in r.json()["Resources"]] == [eng["id"], sales["id"]]


def test_a_group_matching_several_member_filters_is_listed_once(scim):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice, bob])
    text = f'members[value eq "{alice}"] or members[value eq "{bob}"]'
    r = scim.get(f"/Groups?filter={text}")
    assert r.status_code == 200, r.content
    assert r.json()["totalResults"] == 1, r.content
    assert [g["id"] for g in r.json()["Resources"]] == [group["id"]]


def test_bad_filter_is_400_invalid_filter(scim):
    assert_error(scim.get('/Groups?filter=members[type eq "User"]'), 400, "invalidFilter")
    assert_error(scim.get('/Groups?filter=nickname eq "x"'), 400, "invalidFilter")
    assert_error(scim.get("/Groups?filter=displayName eq"), 400, "invalidFilter")


def test_an_id_that_is_no_uuid_names_no_group(scim):
    # A valid filter that names nothing: no results, not a 400.
    group = make_group(scim)
    for text in ('id eq "not-a-uuid"', 'members.value eq "zz"', 'members[value eq "zz"]'):
        r = scim.get(f"/Groups?filter={text}")
        assert r.status_code == 200, r.content
        assert r.json()["totalResults"] == 0
    r = scim.get('/Groups?filter=id ne "not-a-uuid"')
    assert [g["id"] for g in r.json()["Resources"]] == [group["id"]]


def test_sort_by_members_is_400(scim):
    make_group(scim)
    assert_error(scim.get("/Groups?sortBy=members.value"), 400, "invalidValue")
    assert_error(scim.get("/Groups?sortBy=members"), 400, "invalidValue")


def test_paging_and_sort_by_display_name(scim):
    for name in ("Charlie", "alpha", "Bravo", "delta"):
        make_group(scim, name)
    r = scim.get("/Groups?sortBy=displayName&sortOrder=descending&startIndex=2&count=2")
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (4, 2, 2)
    names = [g["displayName"] for g in body["Resources"]]
    # displayName is not caseExact: sorted without regard to case (RFC 7644 §3.4.2.3).
    assert names == ["Charlie", "Bravo"]


def test_entra_excluded_attributes_members_leaves_members_out(scim):
    (alice,) = make_users(scim, 1)
    group = make_group(scim, members=[alice])
    r = scim.get("/Groups?excludedAttributes=members")
    assert r.status_code == 200, r.content
    expected = expected_group(scim, group["id"])  # no members
    assert r.json()["Resources"] == [expected]
    r = scim.get(f"/Groups/{group['id']}?excludedAttributes=members")
    assert r.json() == expected, r.content
    # meta is "returned: default" (RFC 7643 §3.1): only when asked for, once attributes are.
    r = scim.get("/Groups?attributes=displayName")
    assert r.status_code == 200, r.content
    assert r.json()["Resources"] == [
        {k: v for k, v in expected.items() if k in ("schemas", "id", "displayName")}
    ]
    r = scim.get("/Groups?attributes=displayName,meta.version")
    assert r.json()["Resources"][0]["meta"] == {"version": expected["meta"]["version"]}
    r = scim.get(f"/Groups/{group['id']}?excludedAttributes=meta")
    assert "meta" not in r.json() and r["ETag"] == expected["meta"]["version"]


def test_listing_members_costs_the_same_queries_for_one_group_or_many(scim):
    users = make_users(scim, 3)
    make_group(scim, "g0", members=users)

    with CaptureQueriesContext(connection) as one:
        r = scim.get("/Groups")
    assert r.status_code == 200, r.content
    for n in range(1, 6):
        make_group(scim, f"g{n}", members=users)
    with CaptureQueriesContext(connection) as many:
        r = scim.get("/Groups")
    assert r.status_code == 200, r.content
    assert len(r.json()["Resources"]) == 6
    assert all(len(g["members"]) == 3 for g in r.json()["Resources"])
    assert len(many.captured_queries) == len(one.captured_queries)


# --- PUT ------------------------------------------------------------------------------------


def test_put_replaces_display_name_external_id_and_members(scim):
    alice, bob, carol = make_users(scim, 3)
    group = make_group(scim, "Engineering", members=[alice, bob], externalId="old")
    mark = last_row_id()
    r = scim.put(
        f"/Groups/{group['id']}",
        {
            "schemas": [GROUP],
            "id": group["id"],
            "displayName": "Platform",
            "externalId": "new",
            "members": [{"value": bob}, {"value": carol}],
        },
    )
    assert r.status_code == 200, r.content
    assert r.json() == expected_group(scim, group["id"], [bob, carol])
    assert r.json()["meta"]["version"] == 'W/"2"'
    assert member_ids(group["id"]) == [bob, carol]
    assert rows_after(mark) == [
        ("group_updated", "Engineering", "displayName", "Engineering", "Platform"),
        ("group_updated", "Engineering", "externalId", "old", "new"),
        ("group_membership_changed", username(carol), "groups", "", "Platform"),
        ("group_membership_changed", username(alice), "groups", "Platform", ""),
    ]


def test_put_with_the_same_state_writes_nothing(scim):
    (alice,) = make_users(scim, 1)
    group = make_group(scim, "Engineering", members=[alice])
    before = snapshot()
    r = scim.put(
        f"/Groups/{group['id']}", {"displayName": "Engineering", "members": [{"value": alice}]}
    )
    assert r.status_code == 200, r.content
    assert r.json()["meta"]["version"] == 'W/"1"'
    assert snapshot() == before


# --- PATCH: Okta ----------------------------------------------------------------------------


def test_okta_add_member_then_the_same_add_is_a_no_op(scim):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice])
    body = filled("okta/group_add_members", user_id=bob, user_name=username(bob))
    mark = last_row_id()
    r = scim.patch(f"/Groups/{group['id']}", body)
    assert r.status_code == 200, r.content
    assert r.json() == expected_group(scim, group["id"], [alice, bob])
    assert rows_after(mark) == [
        ("group_membership_changed", username(bob), "groups", "", "Engineering"),
    ]
    assert AuditLogEntry.objects.filter(action="group_updated").count() == 1
    before = snapshot()
    r = scim.patch(f"/Groups/{group['id']}", body)
    assert r.status_code == 200, r.content
    assert r.json()["meta"]["version"] == 'W/"2"'
    assert snapshot() == before


def test_okta_remove_member_by_value_filter_then_again_is_a_no_op(scim):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice, bob])
    body = filled("okta/group_remove_member_filter", user_id=alice)
    assert body["Operations"][0]["path"] == f'members[value eq "{alice}"]'
    mark = last_row_id()
    r = scim.patch(f"/Groups/{group['id']}", body)
    assert r.status_code == 200, r.content
    assert r.json() == expected_group(scim, group["id"], [bob])
    assert rows_after(mark) == [
        ("group_membership_changed", username(alice), "groups", "Engineering", ""),
    ]
    before = snapshot()
    r = scim.patch(f"/Groups/{group['id']}", body)
    assert r.status_code == 200, r.content
    assert snapshot() == before


def test_okta_replace_without_path_renames_and_ignores_its_own_id(scim):
    group = make_group(scim, "Engineering")
    mark = last_row_id()
    r = scim.patch(
        f"/Groups/{group['id']}", filled("okta/group_replace_without_path", group_id=group["id"])
    )
    assert r.status_code == 200, r.content
    assert r.json() == expected_group(scim, group["id"])
    assert r.json()["displayName"] == "Engineering Team"
    assert rows_after(mark) == [
        ("group_updated", "Engineering", "displayName", "Engineering", "Engineering Team"),
    ]


def test_replace_without_path_naming_another_id_is_400_mutability(scim):
    group = make_group(scim, "Engineering")
    before = snapshot()
    body = filled(
        "okta/group_replace_without_path", group_id="0b7e8a4c-3d8e-4d6a-9c1e-2f1f9d0a7b11"
    )
    r = scim.patch(f"/Groups/{group['id']}", body)
    assert_error(r, 400, "mutability", "id")
    assert snapshot() == before


# --- PATCH: Entra ---------------------------------------------------------------------------


def test_entra_add_member(other_scim):
    alice, bob = make_users(other_scim, 2)
    group = make_group(other_scim, members=[alice])
    mark = last_row_id()
    r = other_scim.patch(f"/Groups/{group['id']}", filled("entra/group_add_members", user_id=bob))
    assert r.status_code == 200, r.content
    assert r.json() == expected_group(other_scim, group["id"], [alice, bob])
    assert rows_after(mark) == [
        ("group_membership_changed", username(bob), "groups", "", "Engineering"),
    ]


def test_entra_remove_member_by_value_list_then_again_is_a_no_op(other_scim):
    alice, bob = make_users(other_scim, 2)
    group = make_group(other_scim, members=[alice, bob])
    body = filled("entra/group_remove_members", user_id=bob)
    mark = last_row_id()
    r = other_scim.patch(f"/Groups/{group['id']}", body)
    assert r.status_code == 200, r.content
    assert r.json() == expected_group(other_scim, group["id"], [alice])
    assert rows_after(mark) == [
        ("group_membership_changed", username(bob), "groups", "Engineering", ""),
    ]
    before = snapshot()
    r = other_scim.patch(f"/Groups/{group['id']}", body)
    assert r.status_code == 200, r.content
    assert snapshot() == before


def test_entra_replace_display_name(other_scim):
    group = make_group(other_scim, "Group1")
    mark = last_row_id()
    r = other_scim.patch(f"/Groups/{group['id']}", payload("entra/group_replace_display_name"))
    assert r.status_code == 200, r.content
    new_name = "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    assert r.json() == expected_group(other_scim, group["id"])
    assert r.json()["displayName"] == new_name
    assert rows_after(mark) == [("group_updated", "Group1", "displayName", "Group1", new_name)]


# --- PATCH: whole member lists --------------------------------------------------------------


def test_replace_members_sets_the_whole_list(scim):
    alice, bob, carol = make_users(scim, 3)
    group = make_group(scim, members=[alice, bob])
    mark = last_row_id()
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body(
            {"op": "replace", "path": "members", "value": [{"value": carol}, {"value": bob}]}
        ),
    )
    assert r.status_code == 200, r.content
    assert r.json() == expected_group(scim, group["id"], [bob, carol])
    assert rows_after(mark) == [
        ("group_membership_changed", username(carol), "groups", "", "Engineering"),
        ("group_membership_changed", username(alice), "groups", "Engineering", ""),
    ]


def test_remove_members_without_value_removes_them_all(scim):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice, bob])
    mark = last_row_id()
    r = scim.patch(f"/Groups/{group['id']}", patch_body({"op": "remove", "path": "members"}))
    assert r.status_code == 200, r.content
    assert r.json() == expected_group(scim, group["id"])
    assert member_ids(group["id"]) == []
    assert rows_after(mark) == [
        ("group_membership_changed", username(alice), "groups", "Engineering", ""),
        ("group_membership_changed", username(bob), "groups", "Engineering", ""),
    ]
    before = snapshot()
    r = scim.patch(f"/Groups/{group['id']}", patch_body({"op": "remove", "path": "members"}))
    assert r.status_code == 200, r.content
    assert snapshot() == before


def test_add_of_many_members_is_written_in_bulk(scim, django_assert_max_num_queries):
    ids = make_users(scim, 30)
    group = make_group(scim)
    mark = last_row_id()
    with django_assert_max_num_queries(20):
        r = scim.patch(
            f"/Groups/{group['id']}",
            patch_body({"op": "add", "path": "members", "value": [{"value": i} for i in ids]}),
        )
    assert r.status_code == 200, r.content
    assert member_ids(group["id"]) == ids
    assert len(rows_after(mark)) == 30


# --- PATCH: refused, nothing applied --------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["unknown", "malformed", "other_provider", "local", "removed_from_provider"],
)
def test_add_of_a_member_this_provider_did_not_provision_is_400_and_nothing_applied(
    scim, other_scim, bad
):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice])
    if bad == "unknown":
        bad_id = "0b7e8a4c-3d8e-4d6a-9c1e-2f1f9d0a7b11"
    elif bad == "malformed":
        bad_id = "not-a-uuid"
    elif bad == "other_provider":
        (bad_id,) = make_users(other_scim, 1, first=50)
    elif bad == "local":
        local = UserFactory(username="local@example.com", is_local=True)
        # A local user has no provider link, so no SCIM id: an id shaped like one is unknown.
        bad_id = "6f1c1b8e-0a1d-4a57-8b5c-1c2d3e4f5a6b"
        assert not ProviderUser.objects.filter(user=local).exists()
    else:
        (bad_id,) = make_users(scim, 1, first=60)
        assert scim.delete(f"/Users/{bad_id}").status_code == 204
    before = snapshot()
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body(
            {"op": "replace", "path": "displayName", "value": "Renamed"},
            {"op": "add", "path": "members", "value": [{"value": bob}, {"value": bad_id}]},
        ),
    )
    assert_error(r, 400, "invalidValue", bad_id)
    assert snapshot() == before
    assert member_ids(group["id"]) == [alice]


def test_patch_adds_and_removes_read_only_the_memberships_they_name(scim, monkeypatch):
    # Entra and Okta send membership changes a few at a time: each must cost the same in a
    # group of 100,000 as in a group of 3, so the whole member list is never read for them.
    alice, bob, carol, dave = make_users(scim, 4)
    group = make_group(scim, members=[alice, bob])
    mark = last_row_id()

    def whole_list_read(group):
        raise AssertionError("a PATCH of adds and removes read every member")

    monkeypatch.setattr(group_sync, "current_members", whole_list_read)
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body(
            # carol in then out again, dave out then in: the last operation wins.
            {"op": "add", "path": "members", "value": [{"value": carol}, {"value": dave}]},
            {"op": "remove", "path": f'members[value eq "{carol}"]'},
            {"op": "remove", "path": "members", "value": [{"value": alice}, {"value": dave}]},
            {"op": "add", "path": "members", "value": [{"value": dave}, {"value": bob}]},
        ),
    )
    assert r.status_code == 200, r.content
    assert [m["value"] for m in r.json()["members"]] == [bob, dave]
    assert member_ids(group["id"]) == [bob, dave]
    assert rows_after(mark) == [
        ("group_membership_changed", username(dave), "groups", "", "Engineering"),
        ("group_membership_changed", username(alice), "groups", "Engineering", ""),
    ]


@pytest.mark.parametrize(
    "template",
    [
        'members[value eq"{a}" or value eq"{b}"]',  # RFC 7644 §3.5.2.2 writes no space
        'members[(value eq "{a}") or (value eq "{b}")]',
        'members[type eq "User" and (value eq "{a}" or value eq "{b}")]',
        'members[value eq "{a}" and type eq "user" or value eq "{b}"]',
        'MEMBERS[VALUE EQ "{a}" OR Value Eq "{b}"]',
    ],
)
def test_a_member_path_may_name_its_ids_in_any_filter_the_rfc_allows(scim, template):
    alice, bob, carol = make_users(scim, 3)
    group = make_group(scim, members=[alice, bob, carol])
    path = template.format(a=alice, b=bob)
    r = scim.patch(f"/Groups/{group['id']}", patch_body({"op": "remove", "path": path}))
    assert r.status_code == 200, r.content
    assert member_ids(group["id"]) == [carol]


def test_patch_mixing_a_replace_of_members_with_adds_uses_the_whole_list(scim):
    alice, bob, carol = make_users(scim, 3)
    group = make_group(scim, members=[alice, bob])
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body(
            {"op": "add", "path": "members", "value": [{"value": carol}]},
            {"op": "replace", "path": "members", "value": [{"value": bob}]},
            {"op": "add", "path": "members", "value": [{"value": alice}]},
        ),
    )
    assert r.status_code == 200, r.content
    assert member_ids(group["id"]) == [alice, bob]


def test_patch_adding_a_user_of_no_provider_with_a_removal_is_400_and_nothing_applied(scim):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice])
    before = snapshot()
    unknown = "0b7e8a4c-3d8e-4d6a-9c1e-2f1f9d0a7b11"
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body(
            {"op": "add", "path": "members", "value": [{"value": bob}, {"value": unknown}]},
            {"op": "remove", "path": "members", "value": [{"value": unknown}]},
        ),
    )
    assert_error(r, 400, "invalidValue", unknown)
    assert snapshot() == before


def test_remove_of_an_unknown_or_deleted_member_is_a_no_op_beside_the_real_removal(scim):
    # Entra resends ids from its cache: one of a user it since DELETEd must not fail the
    # batch, or the request's real removals never happen and those users keep the group.
    alice, bob, carol = make_users(scim, 3)
    group = make_group(scim, members=[alice, bob, carol])
    assert scim.delete(f"/Users/{carol}").status_code == 204
    unknown = "0b7e8a4c-3d8e-4d6a-9c1e-2f1f9d0a7b11"
    mark = last_row_id()
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body(
            {
                "op": "Remove",
                "path": "members",
                "value": [{"value": alice}, {"value": unknown}, {"value": carol}],
            }
        ),
    )
    assert r.status_code == 200, r.content
    assert [m["value"] for m in r.json()["members"]] == [bob]
    assert rows_after(mark) == [
        ("group_membership_changed", username(alice), "groups", "Engineering", "")
    ]
    mark = last_row_id()
    before = snapshot()
    for path in (f'members[value eq "{unknown}"]', f'members[value eq "{carol.upper()}"]'):
        r = scim.patch(f"/Groups/{group['id']}", patch_body({"op": "remove", "path": path}))
        assert r.status_code == 200, r.content
    assert snapshot()[:2] == before[:2]
    assert rows_after(mark) == []


def test_remove_of_an_id_that_is_no_user_id_is_400_and_nothing_applied(scim):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice, bob])
    before = snapshot()
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body(
            {"op": "Remove", "path": "members", "value": [{"value": alice}, {"value": "bob"}]}
        ),
    )
    assert_error(r, 400, "invalidValue", "'bob' is not a user id")
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "remove", "path": 'members[value eq "user1@example.com"]'}),
    )
    assert_error(r, 400, "invalidValue", "'user1@example.com'")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "replace", "path": "description", "value": "x"}, "invalidPath"),
        ({"op": "add", "path": "members.display", "value": "x"}, "invalidPath"),
        ({"op": "remove", "path": 'members[display eq "x"]'}, "invalidFilter"),
        ({"op": "remove", "path": 'members[value co "x"]'}, "invalidFilter"),
        ({"op": "remove", "path": 'members[not (value eq "x")]'}, "invalidFilter"),
        ({"op": "remove", "path": 'members[value eq "x" and display eq "y"]'}, "invalidFilter"),
        ({"op": "remove", "path": "members[value eq]"}, "invalidPath"),
        ({"op": "replace", "path": 'members[value eq "x"]', "value": []}, "invalidPath"),
        ({"op": "remove"}, "noTarget"),
        ({"op": "remove", "path": "displayName"}, "invalidValue"),
        ({"op": "replace", "path": "displayName", "value": ""}, "invalidValue"),
        ({"op": "add", "path": "members", "value": "not-a-list"}, "invalidValue"),
        ({"op": "add", "path": "members", "value": []}, "invalidValue"),
        ({"op": "move", "path": "members", "value": []}, "invalidSyntax"),
        ({"op": "replace", "value": {"description": "x"}}, "invalidPath"),
    ],
)
def test_an_operation_that_cannot_be_applied_is_an_error_and_nothing_changes(
    scim, operation, scim_type
):
    (alice,) = make_users(scim, 1)
    group = make_group(scim, members=[alice])
    before = snapshot()
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "Renamed"}, operation),
    )
    assert_error(r, 400, scim_type)
    assert snapshot() == before


def test_stale_if_match_is_412_and_nothing_changes(scim):
    (alice,) = make_users(scim, 1)
    group = make_group(scim)
    scim.patch(
        f"/Groups/{group['id']}", patch_body({"op": "replace", "path": "displayName", "value": "B"})
    )
    before = snapshot()
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "add", "path": "members", "value": [{"value": alice}]}),
        HTTP_IF_MATCH='W/"1"',
    )
    assert_error(r, 412, None)
    assert snapshot() == before
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "add", "path": "members", "value": [{"value": alice}]}),
        HTTP_IF_MATCH='W/"2"',
    )
    assert r.status_code == 200, r.content


# --- provider isolation ---------------------------------------------------------------------


def test_another_providers_group_is_404_for_every_method_and_nothing_changes(scim, other_scim):
    (alice,) = make_users(scim, 1)
    (theirs,) = make_users(other_scim, 1, first=9)
    group = make_group(other_scim, "Theirs", members=[theirs])
    before = snapshot()
    path = f"/Groups/{group['id']}"
    assert_error(scim.get(path), 404, None)
    assert_error(scim.put(path, {"displayName": "Mine"}), 404, None)
    assert_error(
        scim.patch(path, patch_body({"op": "add", "path": "members", "value": [{"value": alice}]})),
        404,
        None,
    )
    assert_error(scim.delete(path), 404, None)
    assert scim.get("/Groups").json()["totalResults"] == 0
    assert snapshot() == before


# --- DELETE ---------------------------------------------------------------------------------


def test_delete_group_is_204_then_404_and_logs_each_member(scim):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice, bob])
    mark = last_row_id()
    r = scim.delete(f"/Groups/{group['id']}")
    assert r.status_code == 204, r.content
    assert_error(scim.get(f"/Groups/{group['id']}"), 404, None)
    assert_error(scim.delete(f"/Groups/{group['id']}"), 404, None)
    assert GroupMembership.objects.count() == 0
    assert rows_after(mark) == [
        ("group_membership_changed", username(alice), "groups", "Engineering", ""),
        ("group_membership_changed", username(bob), "groups", "Engineering", ""),
        ("group_removed", "Engineering", "displayName", "Engineering", ""),
    ]
    assert AuditLogEntry.objects.filter(action="group_removed").count() == 1


def test_user_deleted_through_users_disappears_from_the_groups_members(scim):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice, bob])
    bob_name = username(bob)
    assert scim.delete(f"/Users/{alice}").status_code == 204
    r = scim.get(f"/Groups/{group['id']}")
    assert r.status_code == 200, r.content
    assert r.json()["members"] == [member(scim, bob)]
    r = scim.get(f'/Groups?filter=members[value eq "{alice}"]')
    assert r.json()["totalResults"] == 0, r.content
    # Removing everyone then touches only the members the provider still sees.
    mark = last_row_id()
    r = scim.patch(f"/Groups/{group['id']}", patch_body({"op": "remove", "path": "members"}))
    assert r.status_code == 200, r.content
    assert rows_after(mark) == [
        ("group_membership_changed", bob_name, "groups", "Engineering", ""),
    ]


def test_okta_push_of_thousands_of_members_in_one_request(scim):
    organization = Organization.objects.default()
    users = User.objects.bulk_create(
        User(username=f"bulk{n}@example.com", organization=organization) for n in range(1500)
    )
    links = ProviderUser.objects.bulk_create(
        ProviderUser(provider=scim.provider, user=user) for user in users
    )
    ids = [str(link.scim_id) for link in links]
    group = make_group(scim, "Everyone")
    mark = last_row_id()
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "add", "path": "members", "value": [{"value": i} for i in ids]}),
        QUERY_STRING="excludedAttributes=members",
    )
    assert r.status_code == 200, r.content
    assert GroupMembership.objects.filter(group__scim_id=group["id"]).count() == 1500
    assert len(rows_after(mark)) == 1500
    r = scim.get(f"/Groups/{group['id']}")
    assert len(r.json()["members"]) == 1500, r.content
    # Without a shaped answer, a PATCH of a group this big answers 204 with its ETag, not
    # the whole member list; a small group's PATCH answers with the whole group.
    etag = r["ETag"]
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "remove", "path": f'members[value eq "{ids[0]}"]'}),
    )
    assert (r.status_code, r.content, r.get("Content-Type")) == (204, b"", None)
    assert r["ETag"] != etag and r["ETag"] == scim.get(f"/Groups/{group['id']}")["ETag"]
    assert GroupMembership.objects.filter(group__scim_id=group["id"]).count() == 1499


def test_user_deleted_and_pushed_again_is_not_silently_a_member_again(scim):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice, bob])
    assert scim.delete(f"/Users/{alice}").status_code == 204
    r = scim.post("/Users", new_user(1))
    assert r.status_code == 201, r.content
    r = scim.get(f"/Groups/{group['id']}")
    assert r.json()["members"] == [member(scim, bob)], r.content


def test_a_membership_written_after_the_users_removal_does_not_come_back_with_it(scim):
    # A group PATCH that resolved the user just before its DELETE committed writes its
    # membership afterwards (PostgreSQL, READ COMMITTED): pushed again, the user must still
    # start in no group, and adding it again must work.
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[bob])
    assert scim.delete(f"/Users/{alice}").status_code == 204
    user = User.objects.get(username="user1@example.com")
    GroupMembership.objects.create(group=ScimGroup.objects.get(scim_id=group["id"]), user=user)
    alice = scim.post("/Users", new_user(1)).json()["id"]
    assert scim.get(f"/Groups/{group['id']}").json()["members"] == [member(scim, bob)]
    assert scim.get(f"/Users/{alice}").json()["groups"] == []
    r = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "add", "path": "members", "value": [{"value": alice}]}),
    )
    assert r.status_code == 200, r.content
    assert member_ids(group["id"]) == [bob, alice]


def test_user_deleted_through_users_changes_the_groups_etag(scim):
    alice, bob = make_users(scim, 2)
    group = make_group(scim, members=[alice, bob])
    assert scim.delete(f"/Users/{alice}").status_code == 204
    r = scim.get(f"/Groups/{group['id']}", HTTP_IF_NONE_MATCH='W/"1"')
    assert r.status_code == 200, r.content
    assert r.json() == expected_group(scim, group["id"], [bob])


# --- POST /.search across resource types ------------------------------------------------------


def test_root_search_pages_users_then_groups_as_one_list(scim):
    users = make_users(scim, 3)
    groups = [make_group(scim, name)["id"] for name in ("Ops", "Dev")]
    everyone = users + groups
    seen = []
    for start in (1, 3, 5):
        r = scim.post("/.search", {"startIndex": start, "count": 2})
        assert r.status_code == 200, r.content
        body = r.json()
        assert (body["totalResults"], body["startIndex"]) == (5, start)
        seen += [resource["id"] for resource in body["Resources"]]
    assert seen == everyone
    r = scim.post("/.search", {"startIndex": 6})
    assert (r.json()["totalResults"], r.json()["Resources"]) == (5, [])


def test_root_search_filter_and_sort_on_attributes_one_type_lacks(scim):
    users = make_users(scim, 2)
    make_group(scim, "Ops")
    r = scim.post("/.search", {"filter": "userName pr"})
    assert [x["id"] for x in r.json()["Resources"]] == users
    r = scim.post("/.search", {"filter": 'displayName eq "Ops"'})
    assert [x["displayName"] for x in r.json()["Resources"]] == ["Ops"]
    r = scim.post("/.search", {"sortBy": "userName", "sortOrder": "descending"})
    assert r.status_code == 200, r.content
    assert [x.get("userName", x.get("displayName")) for x in r.json()["Resources"]] == [
        "user2@example.com", "user1@example.com", "Ops"
    ]  # fmt: skip


def test_root_search_or_across_types_finds_each_type_s_matches(scim):
    # A term on an attribute one type lacks matches none of that type: the group named Ops
    # is found beside user1 (the whole group type was left out before).
    users = make_users(scim, 2)
    make_group(scim, "Ops")
    make_group(scim, "Sales")
    r = scim.post("/.search", {"filter": 'displayName eq "Ops" or userName eq "user1@example.com"'})
    assert r.status_code == 200, r.content
    assert [x.get("userName", x.get("displayName")) for x in r.json()["Resources"]] == [
        "user1@example.com", "Ops"
    ]  # fmt: skip
    assert r.json()["totalResults"] == 2
    r = scim.post("/.search", {"filter": 'not (userName eq "user1@example.com")', "count": 10})
    ids = [x["id"] for x in r.json()["Resources"]]
    assert ids[0] == users[1] and len(ids) == 3  # user2, and both groups (no userName)


def test_a_get_of_the_base_url_is_a_query_against_the_server_root(scim):
    # RFC 7644 §3.4.2.1: what POST /.search answers for a body, GET of the root answers for
    # the same query parameters, with or without the trailing slash.
    users = make_users(scim, 2)
    make_group(scim, "Ops")
    query = {"filter": 'displayName eq "Ops" or userName eq "user1@example.com"'}
    searched = scim.post("/.search", query).json()
    for path in ("/", ""):
        r = scim.get(path, data=query)
        assert r.status_code == 200, r.content
        assert r.json() == searched
    assert [x["id"] for x in scim.get("/", data={"count": "1"}).json()["Resources"]] == users[:1]
    assert_error(scim.get("/", data={"filter": "(((("}), 400, "invalidFilter")
    assert_error(scim.post("/", {}), 405, None)
    assert scim.client.head(scim.base + "/").status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"filter": "(((("}, {"filter": "garbage garbage"}, {"filter": "x" * 2001},
     {"filter": 'userName eq "\\ud800"'}, {"filter": "bogus eq \"x\""}],
)  # fmt: skip
def test_root_search_with_a_filter_no_type_can_take_is_400(scim, body):
    make_users(scim, 1)
    assert_error(scim.post("/.search", body), 400, "invalidFilter")


# --- externalId: unique per provider, as for users -------------------------------------------


def test_a_second_group_with_the_same_external_id_is_409_and_writes_nothing(scim, other_scim):
    make_group(scim, "Engineering", externalId="entra-1")
    before = snapshot()
    r = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Eng 2", "externalId": "entra-1"})
    assert_error(r, 409, "uniqueness", "entra-1")
    assert snapshot() == before
    # Another provider's groups are its own business; groups without an externalId are many.
    assert (
        other_scim.post(
            "/Groups", {"schemas": [GROUP], "displayName": "E", "externalId": "entra-1"}
        ).status_code
        == 201
    )
    make_group(scim, "No id 1")
    make_group(scim, "No id 2")


def test_taking_another_group_s_external_id_by_put_or_patch_is_409(scim):
    make_group(scim, "Engineering", externalId="entra-1")
    sales = make_group(scim, "Sales", externalId="entra-2")
    before = snapshot()
    r = scim.put(
        f"/Groups/{sales['id']}",
        {"schemas": [GROUP], "displayName": "Sales", "externalId": "entra-1"},
    )
    assert_error(r, 409, "uniqueness", "entra-1")
    r = scim.patch(
        f"/Groups/{sales['id']}",
        patch_body({"op": "replace", "path": "externalId", "value": "entra-1"}),
    )
    assert_error(r, 409, "uniqueness", "entra-1")
    assert snapshot() == before
    r = scim.patch(
        f"/Groups/{sales['id']}",
        patch_body({"op": "replace", "path": "externalId", "value": "entra-3"}),
    )
    assert r.status_code == 200, r.content
    assert r.json()["externalId"] == "entra-3"


@pytest.mark.parametrize("path", ["id", "meta", "meta.version"])
def test_a_patch_path_to_a_read_only_group_attribute_is_400_mutability(scim, path):
    group = make_group(scim, "Engineering")
    before = snapshot()
    r = scim.patch(
        f"/Groups/{group['id']}", patch_body({"op": "replace", "path": path, "value": "x"})
    )
    assert_error(r, 400, "mutability")
    assert snapshot() == before


def test_remove_of_members_selected_by_an_or_of_ids(scim):
    alice, bob, carol = make_users(scim, 3)
    group = make_group(scim, "Engineering", members=[alice, bob, carol])
    path = f'members[value eq "{alice}" or value eq "{carol}"]'
    r = scim.patch(f"/Groups/{group['id']}", patch_body({"op": "remove", "path": path}))
    assert r.status_code == 200, r.content
    assert member_ids(group["id"]) == [bob]


def test_a_display_name_reads_back_as_sent_and_is_found_by_it(scim):
    # Entra creates a group, then looks it up by the name it sent: a trimmed name was missed,
    # and Entra would create the group again.
    group = make_group(scim, "  Sales EMEA ")
    assert group["displayName"] == "  Sales EMEA "
    r = scim.get("/Groups", data={"filter": 'displayName eq "  Sales EMEA "'})
    assert [g["id"] for g in r.json()["Resources"]] == [group["id"]]
    r = scim.post("/Groups", {"schemas": [GROUP], "displayName": "   "})
    assert_error(r, 400, "invalidValue", "displayName")


def test_a_group_is_read_with_its_members_in_one_statement(scim):
    # One snapshot: read one after the other, a PATCH committing in between served one
    # meta.version with two different memberships (a concurrency probe saw 101 such pairs).
    ids = [scim.post("/Users", new_user(i)).json()["id"] for i in (1, 2)]
    body = {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": ids[1]}]}
    gid = scim.post("/Groups", body).json()["id"]
    add = {"op": "add", "path": "members", "value": [{"value": ids[0]}]}
    scim.patch(f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": [add]})
    with CaptureQueriesContext(connection) as queries:
        r = scim.get(f"/Groups/{gid}")
    assert [m["value"] for m in r.json()["members"]] == [ids[1], ids[0]]  # as added
    reads = [q["sql"] for q in queries.captured_queries if "groupmembership" in q["sql"]]
    assert len(reads) == 1 and 'FROM "provisioning_scimgroup"' in reads[0]


@pytest.mark.parametrize(
    ("query", "has_members"),
    [
        ("attributes=urn:ietf:params:scim:schemas:core:2.0:Group:members", True),
        ("attributes=urn:ietf:params:scim:schemas:core:2.0:Group:members.value", True),
        ("attributes=urn:ietf:params:scim:schemas:core:2.0:Group", True),
        ("excludedAttributes=urn:ietf:params:scim:schemas:core:2.0:Group:members", False),
        ("attributes=displayName", False),
    ],
)
def test_members_named_with_the_core_urn_are_read(scim, query, has_members):
    # RFC 7644 §3.10: an attribute may be named with its schema URN; the URN-named members
    # were asked for, and answered without any.
    uid = scim.post("/Users", new_user(1)).json()["id"]
    body = {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": uid}]}
    gid = scim.post("/Groups", body).json()["id"]
    r = scim.get(f"/Groups/{gid}?{query}")
    assert r.status_code == 200, r.content
    assert ("members" in r.json()) == has_members
    if has_members:
        assert r.json()["members"][0]["value"] == uid
