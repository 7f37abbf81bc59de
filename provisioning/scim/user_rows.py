"""Render SCIM users straight from database rows, without building model instances.

A list page of 100 users through the ORM builds ~300 model instances (link, user, manager)
and spends most of its time there; reading ``values()`` rows keeps a page within a few
milliseconds. Writes still go through models and services; this module is read-only.
"""

from __future__ import annotations

from typing import Any

from provisioning.models import GroupMembership, ProviderUser

from .schema import CORE_USER, ENTERPRISE_USER, GATEHOUSE_USER, ORG_ATTRIBUTE

ROW_FIELDS = (
    "id",
    "scim_id",
    "external_id",
    "org_attribute",
    "version",
    "user_id",
    "user__username",
    "user__display_name",
    "user__given_name",
    "user__family_name",
    "user__title",
    "user__user_type",
    "user__status",
    "user__email",
    "user__locality",
    "user__region",
    "user__country",
    "user__employee_number",
    "user__department",
    "user__division",
    "user__created_at",
    "user__updated_at",
    "user__manager__provider_link__scim_id",
)


def rows_by_ids(ids: list[int]) -> list[dict[str, Any]]:
    """The rows of these link ids, in the order given."""
    by_id = {row["id"]: row for row in ProviderUser.objects.filter(id__in=ids).values(*ROW_FIELDS)}
    return [by_id[i] for i in ids if i in by_id]


def groups_by_user(provider, user_ids: list[int]) -> dict[int, list[dict]]:
    """Each user's groups of this provider, in one query for the whole page."""
    base = provider.base_url
    groups: dict[int, list[dict]] = {user_id: [] for user_id in user_ids}
    memberships = (
        GroupMembership.objects.filter(user_id__in=user_ids, group__provider=provider)
        .order_by("group_id")
        .values_list("user_id", "group__scim_id", "group__display_name")
    )
    for user_id, group_scim_id, display_name in memberships:
        groups[user_id].append(
            {
                "value": str(group_scim_id),
                "$ref": f"{base}/Groups/{group_scim_id}",
                "display": display_name,
                "type": "direct",
            }
        )
    return groups


def etag_of(version: int) -> str:
    return f'W/"{version}"'


def resource_from_row(row: dict[str, Any], base_url: str, groups: list | None) -> dict:
    """The SCIM representation of a provisioned user. Empty attributes are left out
    (RFC 7643 §2.5: unassigned and null are equivalent)."""
    scim_id = str(row["scim_id"])
    resource: dict[str, Any] = {"schemas": [CORE_USER, ENTERPRISE_USER, GATEHOUSE_USER]}
    resource["id"] = scim_id
    if row["external_id"]:
        resource["externalId"] = row["external_id"]
    resource["userName"] = row["user__username"]
    # name.formatted is not kept, so it is not invented either (what a client sets, it reads).
    name = {
        key: row[column]
        for key, column in (("givenName", "user__given_name"), ("familyName", "user__family_name"))
        if row[column]
    }
    if name:
        resource["name"] = name
    for key, column in (
        ("displayName", "user__display_name"),
        ("title", "user__title"),
        ("userType", "user__user_type"),
    ):
        if row[column]:
            resource[key] = row[column]
    resource["active"] = row["user__status"] == "active"
    if row["user__email"]:
        resource["emails"] = [{"value": row["user__email"], "type": "work", "primary": True}]
    address = {
        key: row[column]
        for key, column in (
            ("locality", "user__locality"),
            ("region", "user__region"),
            ("country", "user__country"),
        )
        if row[column]
    }
    if address:
        resource["addresses"] = [{"type": "work", "primary": True, **address}]
    enterprise = {
        key: row[column]
        for key, column in (
            ("employeeNumber", "user__employee_number"),
            ("department", "user__department"),
            ("division", "user__division"),
        )
        if row[column]
    }
    manager_id = row["user__manager__provider_link__scim_id"]
    if manager_id:
        # displayName is readOnly and optional (RFC 7643 §4.3); leaving it out keeps what a
        # client PATCHed identical to what it reads back.
        enterprise["manager"] = {"value": str(manager_id), "$ref": f"{base_url}/Users/{manager_id}"}
    if enterprise:
        resource[ENTERPRISE_USER] = enterprise
    if row["org_attribute"]:
        resource[GATEHOUSE_USER] = {ORG_ATTRIBUTE: row["org_attribute"]}
    if groups is not None:
        resource["groups"] = groups
    resource["meta"] = {
        "resourceType": "User",
        "created": row["user__created_at"].isoformat(),
        "lastModified": row["user__updated_at"].isoformat(),
        "location": f"{base_url}/Users/{scim_id}",
        "version": etag_of(row["version"]),
    }
    return resource
