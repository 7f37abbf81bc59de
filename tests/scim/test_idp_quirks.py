"""What Okta, Microsoft Entra ID and PingOne really send, fed from their literal payloads
(tests/scim/payloads/<idp>/<quirk>.json)."""

import uuid

import pytest

from identity.models import DeactivationState, PendingDeactivation, User, UserStatus
from synclog.models import AuditLogEntry, SyncChange, SyncLogEntry
from tests.scim.conftest import (
    GATEHOUSE_URN,
    LIST_URN,
    assert_scim_error,
    created,
    expected_scim_user,
    idp_request,
    new_user,
    patch_ops,
    payload,
    snapshot,
)

pytestmark = pytest.mark.django_db

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


# --- Okta -----------------------------------------------------------------------------------


def test_okta_create_user_ignores_password_locale_and_groups(scim):
    r = scim.post("/Users", payload("okta/create_user"))
    assert r.status_code == 201, r.content
    user = User.objects.get(username="test.user@okta.local")
    assert (user.given_name, user.family_name, user.display_name, user.email) == (
        "Test",
        "User",
        "Test User",
        "test.user@okta.local",
    )
    assert user.provider_link.external_id == "00ujl29u0le5T6Aj10h7"
    assert not user.has_usable_password()
    assert r.json() == expected_scim_user(scim, user)


def test_okta_create_with_custom_extension_keeps_org_and_addresses(scim):
    user = created(scim, payload("okta/create_user_custom_extension"))
    assert user.provider_link.org_attribute == "Sales"
    assert (user.locality, user.region, user.country) == ("Minneapolis", "MN", "US")
    assert (user.department, user.division, user.title, user.user_type) == (
        "Sales",
        "Americas",
        "Account Executive",
        "Employee",
    )


def test_okta_custom_attribute_namespace_named_by_the_admin_keeps_org(scim):
    body = payload("okta/create_user_custom_extension")
    block = body.pop("urn:ietf:params:scim:schemas:extension:gatehouse:2.0:User")
    body["urn:ietf:params:scim:schemas:extension:acme:2.0:User"] = {**block, "costCode": "7"}
    user = created(scim, body)
    assert user.provider_link.org_attribute == "Sales"


def test_okta_custom_namespace_carries_the_org_attribute_back(scim):
    # Okta reads an app's custom attribute back from the namespace it sends it in.
    acme = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
    body = payload("okta/create_user_custom_extension")
    body[acme] = body.pop(GATEHOUSE_URN)
    r = scim.post("/Users", body)
    assert r.status_code == 201, r.content
    uid = r.json()["id"]
    for resource in (
        r.json(),
        scim.get(f"/Users/{uid}").json(),
        scim.get("/Users").json()["Resources"][0],
    ):
        assert resource[acme] == {"c42OrgName": "Sales"}
        assert acme in resource["schemas"] and GATEHOUSE_URN not in resource
    only = scim.get(f"/Users/{uid}", data={"attributes": f"{acme}:c42OrgName"}).json()
    assert only[acme] == {"c42OrgName": "Sales"} and "userName" not in only
    # A PATCH by path in that namespace changes it; Gatehouse's own URN takes it back.
    r = scim.patch(
        f"/Users/{uid}", patch_ops({"op": "replace", "path": f"{acme}:c42OrgName", "value": "Ops"})
    )
    assert r.json()[acme] == {"c42OrgName": "Ops"}
    r = scim.patch(
        f"/Users/{uid}",
        patch_ops({"op": "replace", "path": f"{GATEHOUSE_URN}:c42OrgName", "value": "Eng"}),
    )
    assert r.json()[GATEHOUSE_URN] == {"c42OrgName": "Eng"} and acme not in r.json()


def test_okta_filter_before_create_then_create(scim):
    r = idp_request(scim, "okta/filter_before_create")
    assert r.status_code == 200, r.content
    assert r.json()["totalResults"] == 0
    user = created(scim, payload("okta/create_user"))
    r = idp_request(scim, "okta/filter_before_create")
    body = r.json()
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (1, 1, 1)
    assert body["schemas"] == [LIST_URN]
    assert body["Resources"] == [expected_scim_user(scim, user)]


def test_okta_put_full_replace_updates_and_keeps_the_id(scim):
    user = created(scim, payload("okta/create_user"))
    uid = str(user.provider_link.scim_id)
    body = payload("okta/put_full_replace")
    body["id"] = uid
    r = scim.put(f"/Users/{uid}", body)
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.given_name, user.display_name) == ("Another", "Another User")
    assert r.json() == expected_scim_user(scim, user)
    assert r.json()["id"] == uid


def test_okta_put_resent_unchanged_writes_nothing(scim):
    user = created(scim, payload("okta/create_user"))
    uid = str(user.provider_link.scim_id)
    body = payload("okta/put_full_replace")
    body["id"] = uid
    assert scim.put(f"/Users/{uid}", body).status_code == 200
    before = snapshot()
    r = scim.put(f"/Users/{uid}", body)
    assert r.status_code == 200, r.content
    assert snapshot() == before


def test_okta_replace_without_path_deactivates_and_reactivates(scim):
    user = created(scim, payload("okta/create_user"))
    uid = user.provider_link.scim_id
    r = scim.patch(f"/Users/{uid}", payload("okta/patch_deactivate"))
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.status == UserStatus.BLOCKED
    assert PendingDeactivation.objects.get(user=user).state == DeactivationState.PENDING
    r = scim.patch(f"/Users/{uid}", payload("okta/patch_reactivate"))
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.status == UserStatus.ACTIVE
    assert PendingDeactivation.objects.get(user=user).state == DeactivationState.CANCELLED


def test_okta_password_push_is_accepted_and_changes_nothing(scim):
    user = created(scim, payload("okta/create_user"))
    before = snapshot()
    r = scim.patch(f"/Users/{user.provider_link.scim_id}", payload("okta/patch_password"))
    assert r.status_code == 200, r.content
    assert snapshot() == before


# --- Entra ----------------------------------------------------------------------------------


def test_entra_probe_for_a_random_id_is_404(other_scim):
    assert_scim_error(other_scim.get(f"/Users/{uuid.uuid4()}"), 404)


def test_entra_probe_filter_then_create(other_scim):
    r = idp_request(other_scim, "entra/probe_filter")
    assert r.status_code == 200, r.content
    assert r.json()["totalResults"] == 0
    r = other_scim.post("/Users", payload("entra/create_user"))
    assert r.status_code == 201, r.content
    user = User.objects.get(username="jdoe@contoso.com")
    assert r.json() == expected_scim_user(other_scim, user)
    assert idp_request(other_scim, "entra/probe_filter").json()["totalResults"] == 1


def test_entra_create_keeps_work_address_enterprise_and_ignores_phones(other_scim):
    user = created(other_scim, payload("entra/create_user"))
    assert user.provider_link.external_id == "jdoe"
    assert (user.title, user.display_name) == ("Engineer", "John Doe")
    assert (user.locality, user.region, user.country) == ("Redmond", "WA", "US")
    assert (user.department, user.employee_number) == ("Engineering", "701984")


def test_entra_capitalised_ops(other_scim):
    user = created(other_scim, payload("entra/create_user"))
    r = other_scim.patch(
        f"/Users/{user.provider_link.scim_id}", payload("entra/patch_capitalised_ops")
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.title, user.family_name) == ("Principal Engineer", "Doe-Smith")
    assert r.json() == expected_scim_user(other_scim, user)


def test_entra_active_false_as_a_string_blocks_and_true_cancels(other_scim):
    user = created(other_scim, payload("entra/create_user"))
    uid = user.provider_link.scim_id
    r = other_scim.patch(f"/Users/{uid}", payload("entra/patch_active_false_string"))
    assert r.status_code == 200, r.content
    assert r.json()["active"] is False
    user.refresh_from_db()
    assert user.status == UserStatus.BLOCKED
    assert PendingDeactivation.objects.filter(user=user, state=DeactivationState.PENDING).exists()
    r = other_scim.patch(f"/Users/{uid}", payload("entra/patch_active_true_string"))
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.status == UserStatus.ACTIVE
    assert not PendingDeactivation.objects.filter(
        user=user, state=DeactivationState.PENDING
    ).exists()


def test_entra_add_manager_by_id_then_remove_it(other_scim):
    manager = created(other_scim, new_user(9))
    user = created(other_scim, payload("entra/create_user"))
    uid = user.provider_link.scim_id
    body = payload("entra/patch_add_manager")
    body["Operations"][0]["value"] = str(manager.provider_link.scim_id)
    sync_before = SyncLogEntry.objects.count()
    r = other_scim.patch(f"/Users/{uid}", body)
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.manager_id == manager.pk
    assert r.json() == expected_scim_user(other_scim, user)
    assert r.json()[ENTERPRISE]["manager"]["value"] == str(manager.provider_link.scim_id)
    row = SyncLogEntry.objects.order_by("pk")[sync_before:].get()
    assert (row.change_type, row.attribute, row.new_value) == (
        SyncChange.ATTRIBUTE_UPDATED,
        "manager",
        str(manager.pk),  # PRODUCT.md "Sync log": manager values carry the user id
    )
    r = other_scim.patch(f"/Users/{uid}", payload("entra/patch_remove_manager"))
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.manager_id is None


def test_entra_email_value_path_changes_only_the_email(other_scim):
    user = created(other_scim, payload("entra/create_user"))
    r = other_scim.patch(
        f"/Users/{user.provider_link.scim_id}", payload("entra/patch_email_value_path")
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.email, user.username) == ("john.doe@contoso.com", "jdoe@contoso.com")


def test_entra_address_value_paths_keep_locality_and_ignore_street(other_scim):
    user = created(other_scim, payload("entra/create_user"))
    sync_before = SyncLogEntry.objects.count()
    r = other_scim.patch(
        f"/Users/{user.provider_link.scim_id}", payload("entra/patch_address_value_paths")
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.locality, user.region) == ("Seattle", "WA")
    rows = SyncLogEntry.objects.order_by("pk")[sync_before:]
    assert [(s.attribute, s.old_value, s.new_value) for s in rows] == [
        ("addresses.locality", "Redmond", "Seattle")
    ]


def test_entra_replace_with_an_object_of_dotted_paths(other_scim):
    user = created(other_scim, payload("entra/create_user"))
    r = other_scim.patch(
        f"/Users/{user.provider_link.scim_id}", payload("entra/patch_dotted_object_value")
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert (user.given_name, user.department) == ("Jonathan", "Research")


def test_entra_custom_extension_attribute_path_is_accepted_and_not_kept(other_scim):
    # Entra maps an admin's custom attribute to its own namespace and sends it as a path;
    # refusing it failed the whole update, the displayName beside it included.
    user = created(other_scim, payload("entra/create_user"))
    r = other_scim.patch(
        f"/Users/{user.provider_link.scim_id}", payload("entra/patch_custom_extension_attribute")
    )
    assert r.status_code == 200, r.content
    assert r.json()["displayName"] == "Jonathan Doe"
    remove = patch_ops(
        {
            "op": "Remove",
            "path": "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:"
            "CustomAttribute",
        }
    )
    assert other_scim.patch(f"/Users/{user.provider_link.scim_id}", remove).status_code == 200


def test_entra_flat_custom_extension_keys_in_a_value_keep_only_the_org_attribute(other_scim):
    user = created(other_scim, payload("entra/create_user"))
    r = other_scim.patch(
        f"/Users/{user.provider_link.scim_id}",
        payload("entra/patch_flat_custom_extension_value"),
    )
    assert r.status_code == 200, r.content
    user.refresh_from_db()
    assert user.display_name == "Jonathan Doe"
    assert user.provider_link.org_attribute == "Research"
    assert "Bay 7" not in r.content.decode()


def test_removing_a_whole_custom_namespace_clears_its_org_attribute(scim):
    acme = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
    user = created(scim, new_user(1, **{acme: {"c42OrgName": "Sales"}}))
    r = scim.patch(
        f"/Users/{user.provider_link.scim_id}", patch_ops({"op": "remove", "path": acme})
    )
    assert r.status_code == 200, r.content
    user.provider_link.refresh_from_db()
    assert user.provider_link.org_attribute == ""


def test_unknown_attribute_of_a_known_schema_is_still_refused(other_scim):
    user = created(other_scim, payload("entra/create_user"))
    before = snapshot()
    for path in (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:departmnt",
        "urn:ietf:params:scim:schemas:core:2.0:User:nickNam",
        "urn:ietf:params:scim:schemas:core:2.0:User",  # the whole core schema: not a path
        "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
        "urn:ietf:params:scim:schemas:core:2.0:Usr:title",
    ):
        r = other_scim.patch(
            f"/Users/{user.provider_link.scim_id}",
            patch_ops({"op": "replace", "path": path, "value": "x"}),
        )
        assert_scim_error(r, 400, "invalidPath")
    assert snapshot() == before


def test_entra_three_letter_country_is_400_and_changes_nothing(other_scim):
    user = created(other_scim, payload("entra/create_user"))
    before = snapshot()
    r = other_scim.patch(
        f"/Users/{user.provider_link.scim_id}", payload("entra/patch_country_three_letters")
    )
    body = assert_scim_error(r, 400, "invalidValue")
    assert "USA" in body["detail"]
    assert snapshot() == before


def test_entra_home_email_value_path_is_ignored(other_scim):
    user = created(other_scim, payload("entra/create_user"))
    before = snapshot()
    body = payload("entra/patch_email_value_path")
    body["Operations"][0]["path"] = 'emails[type eq "home"].value'
    r = other_scim.patch(f"/Users/{user.provider_link.scim_id}", body)
    assert r.status_code == 200, r.content
    assert snapshot() == before


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Remove", "path": 'roles[value eq "Admin"]'},
        {"op": "Replace", "path": 'phoneNumbers[value eq "+1 555 0100"].value', "value": "1"},
        {"op": "Add", "path": 'roles[primary eq "False"].value', "value": "Reader"},
        {"op": "Remove", "path": 'entitlements[value eq "x"]'},
        {
            "op": "Replace",
            "path": 'phoneNumbers[type eq "work" and primary eq true].value',
            "value": "1",
        },
        {"op": "Add", "path": 'roles[primary eq "True" and type eq "x"].value', "value": "A"},
    ],
)
def test_entra_value_paths_on_attributes_not_kept_are_accepted_and_change_nothing(
    other_scim, operation
):
    # Entra maps app roles and phone numbers by default; they are accepted and ignored
    # whichever of their values a filter selects, like the attributes themselves.
    user = created(other_scim, payload("entra/create_user"))
    before = snapshot()
    r = other_scim.patch(f"/Users/{user.provider_link.scim_id}", patch_ops(operation))
    assert r.status_code == 200, r.content
    assert snapshot() == before


# --- PingOne --------------------------------------------------------------------------------


def test_pingone_basic_auth_creates_with_top_level_org_attribute(scim_basic):
    r = scim_basic.post("/Users", payload("pingone/create_user_top_level_org"))
    assert r.status_code == 201, r.content
    user = User.objects.get(username="pat.ping@example.org")
    assert user.provider_link.org_attribute == "Field Engineering"
    assert r.json() == expected_scim_user(scim_basic, user)
    assert AuditLogEntry.objects.filter(
        action="user_added", actor_label=scim_basic.provider.credential_username
    ).exists()


def test_pingone_bearer_auth_creates_with_org_in_custom_extension(make_scim):
    pingone = make_scim("PingOne Bearer", "token")
    user = created(pingone, payload("pingone/create_user_custom_extension"))
    assert user.provider_link.org_attribute == "Support"


def test_org_attribute_change_is_one_sync_row(scim_basic):
    user = created(scim_basic, payload("pingone/create_user_top_level_org"))
    body = payload("pingone/create_user_top_level_org")
    body["c42OrgName"] = "Sales"
    sync_before = SyncLogEntry.objects.count()
    r = scim_basic.put(f"/Users/{user.provider_link.scim_id}", body)
    assert r.status_code == 200, r.content
    rows = SyncLogEntry.objects.order_by("pk")[sync_before:]
    assert [(s.attribute, s.old_value, s.new_value) for s in rows] == [
        ("c42OrgName", "Field Engineering", "Sales")
    ]


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_onelogin_s_enterprise_extension_named_with_a_version(scim, version):
    # OneLogin's user templates (developers.onelogin.com/scim/define-user-schema) name the
    # enterprise extension "urn:scim:schemas:extension:enterprise:<version>"; that key was a
    # 400 invalidPath, and every create and update from such an app failed.
    urn = f"urn:scim:schemas:extension:enterprise:{version}"
    body = payload("onelogin/create_user_enterprise")  # its template, empty fields and all
    body[urn] = body.pop("urn:scim:schemas:extension:enterprise:2.0")
    body["schemas"] = [f"urn:scim:schemas:core:{version}", urn]
    r = scim.post("/Users", body)
    assert r.status_code == 201, r.content
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    assert r.json()[enterprise] == {"department": "Sales", "division": "EMEA"}
    assert r.json()["emails"] == [{"value": "kim.lee@example.com", "type": "work", "primary": True}]
    # A custom namespace ending in a version carries the organization attribute as any does.
    body = new_user(2, **{"urn:scim:schemas:extension:acme:2.0": {"c42OrgName": "Acme"}})
    r = scim.post("/Users", body)
    assert r.status_code == 201, r.content
    assert r.json()["urn:scim:schemas:extension:acme:2.0"] == {"c42OrgName": "Acme"}


def test_onelogin_s_enterprise_urn_in_patch_paths(scim):
    uid = scim.post("/Users", new_user(1)).json()["id"]
    urn = "urn:scim:schemas:extension:enterprise:2.0"
    for operation in (
        {"op": "replace", "path": f"{urn}:department", "value": "Sales"},
        {"op": "add", "path": urn, "value": {"division": "EMEA"}},
    ):
        r = scim.patch(f"/Users/{uid}", patch_ops(operation))
        assert r.status_code == 200, r.content
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    assert r.json()[enterprise] == {"department": "Sales", "division": "EMEA"}
    r = scim.patch(f"/Users/{uid}", patch_ops({"op": "remove", "path": urn}))
    assert enterprise not in r.json()


def test_an_over_long_custom_namespace_leaves_answers_in_gatehouse_s(scim):
    acme = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
    long = "urn:ietf:params:scim:schemas:extension:" + "x" * 300 + ":2.0:User"
    uid = scim.post("/Users", new_user(1, **{acme: {"c42OrgName": "Sales"}})).json()["id"]
    r = scim.put(f"/Users/{uid}", new_user(1, **{long: {"c42OrgName": "Ops"}}))
    assert r.status_code == 200, r.content
    assert r.json()[GATEHOUSE_URN] == {"c42OrgName": "Ops"} and acme not in r.json()
    upper = acme.upper().replace("URN:IETF", "urn:ietf")
    r = scim.put(f"/Users/{uid}", new_user(1, **{upper: {"c42OrgName": "Eng"}}))
    assert r.json()[upper] == {"c42OrgName": "Eng"}


def test_discovery_advertises_the_namespace_answers_use(scim):
    acme = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
    assert acme not in scim.get("/Schemas").content.decode()
    created(scim, new_user(1, **{acme: {"c42OrgName": "Sales"}}))
    ids = [schema["id"] for schema in scim.get("/Schemas").json()["Resources"]]
    assert acme in ids
    assert scim.get(f"/Schemas/{acme}").json()["attributes"][0]["name"] == "c42OrgName"
    extensions = scim.get("/ResourceTypes/User").json()["schemaExtensions"]
    assert {"schema": acme, "required": False} in extensions


def test_a_namespace_change_changes_the_version_of_users_shown_in_it(scim):
    acme = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
    uid = scim.post("/Users", new_user(1, **{GATEHOUSE_URN: {"c42OrgName": "Sales"}})).json()["id"]
    plain = scim.post("/Users", new_user(2)).json()["id"]
    before = {u: scim.get(f"/Users/{u}")["ETag"] for u in (uid, plain)}
    assert before[uid] == 'W/"1"'  # Gatehouse's own namespace: the version as it always was
    created(scim, new_user(3, **{acme: {"c42OrgName": "Ops"}}))  # the provider's now
    r = scim.get(f"/Users/{uid}", HTTP_IF_NONE_MATCH=before[uid])
    assert r.status_code == 200 and acme in r.json()
    assert r["ETag"] == r.json()["meta"]["version"] != before[uid]
    assert scim.get(f"/Users/{plain}")["ETag"] == before[plain]  # no organization attribute
    r = scim.patch(
        f"/Users/{uid}",
        patch_ops({"op": "replace", "path": "title", "value": "Lead"}),
        HTTP_IF_MATCH=r["ETag"],
    )
    assert r.status_code == 200, r.content
    assert r["ETag"] == r.json()["meta"]["version"] == scim.get(f"/Users/{uid}")["ETag"]
