"""Render SCIM users straight from database rows, without building model instances.

A list page of 100 users through the ORM builds ~300 model instances (link, user, manager)
and spends most of its time there; reading ``values()`` rows keeps a page within a few
milliseconds. Writes still go through models and services; this module is read-only.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.db import connection
from django.db.models import TextField
from django.db.models.functions import Cast

from provisioning.models import GroupMembership, ProviderUser

from .schema import CORE_USER, ENTERPRISE_USER, GATEHOUSE_USER, ORG_ATTRIBUTE

ROW_FIELDS = (
    "id",
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
)


_ROWS_SQL: str | None = None
_GROUPS_SQL: str | None = None


def _sql_for_ids(queryset, expected_params=(0,)) -> str:
    """The ORM's SQL for ``queryset`` (filtered ``__in=[0]``), compiled once per process
    (building the query through the ORM cost more than running it), with its IN list turned
    into a slot for a page of ids: ``= ANY(%s)`` with one array on PostgreSQL, ``IN (…)`` on
    SQLite."""
    sql, params = queryset.query.sql_with_params()
    if tuple(params) != tuple(expected_params) or sql.count("IN (%s)") != 1:  # pragma: no cover
        raise RuntimeError("unexpected SQL shape for a page query")
    if connection.vendor == "postgresql":
        return sql.replace("IN (%s)", "= ANY(%s)")
    return sql.replace("IN (%s)", "IN ({})")


def _with_ids(sql: str, ids: list[int]) -> tuple[str, list]:
    if connection.vendor == "postgresql":
        return sql, [list(ids)]
    return sql.format(", ".join(["%s"] * len(ids))), list(ids)


def _iso(value: str) -> str:
    """ISO 8601 of a UTC timestamp read as text: SQLite's stored "YYYY-MM-DD HH:MM:SS[.f]",
    PostgreSQL's "…+00" (the connection's time zone is UTC)."""
    value = value.replace(" ", "T", 1).removesuffix("+00")
    if "." in value:  # PostgreSQL drops trailing zeros of the microseconds; isoformat keeps 6
        seconds, fraction = value.split(".", 1)
        value = f"{seconds}.{fraction.ljust(6, '0')}"
    return value + "+00:00"


def _uuid_text(value: str | None) -> str | None:
    # SQLite stores the 32 hex digits; PostgreSQL's uuid as text is already dashed.
    if value is not None and len(value) == 32:
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return value


def _rows_query():
    # Timestamps and UUIDs read as text: converting them to Python objects (a regex per
    # timestamp on SQLite, UUID and tz-aware datetime loaders on PostgreSQL) cost more than
    # the rest of a page, and the response wants text anyway.
    text = TextField()
    return ProviderUser.objects.filter(id__in=[0]).values(
        *ROW_FIELDS,
        scim_text=Cast("scim_id", text),
        manager_scim_text=Cast("user__manager__provider_link__scim_id", text),
        created=Cast("user__created_at", text),
        modified=Cast("user__updated_at", text),
    )


def rows_by_ids(ids: list[int]) -> list[dict[str, Any]]:
    """The rows of these link ids, in the order given, as plain dicts (timestamps as ISO
    text, ids as UUID text)."""
    global _ROWS_SQL
    if not ids:
        return []
    if _ROWS_SQL is None:
        _ROWS_SQL = _sql_for_ids(_rows_query())
    with connection.cursor() as cursor:
        cursor.execute(*_with_ids(_ROWS_SQL, ids))
        names = [column[0] for column in cursor.description]
        fetched = cursor.fetchall()
    by_id = {}
    for values in fetched:
        row = dict(zip(names, values, strict=True))
        row["scim_id"] = _uuid_text(row.pop("scim_text"))
        row["manager_scim_id"] = _uuid_text(row.pop("manager_scim_text"))
        row["created"] = _iso(row["created"])
        row["modified"] = _iso(row["modified"])
        by_id[row["id"]] = row
    return [by_id[i] for i in ids if i in by_id]


def row_from_link(link: ProviderUser) -> dict[str, Any] | None:
    """The row ``rows_by_ids`` would read for this link, from the instances a write just
    saved: a PUT, PATCH or POST answers without reading its user back. None when the user has
    a manager (its SCIM id is another row: read it with ``rows_by_ids``)."""
    user = link.user
    if user.manager_id is not None:
        return None
    row = {
        "id": link.id,
        "external_id": link.external_id,
        "org_attribute": link.org_attribute,
        "version": link.version,
        "user_id": user.id,
        "scim_id": str(link.scim_id),
        "manager_scim_id": None,
        "created": user.created_at.astimezone(UTC).isoformat(),
        "modified": user.updated_at.astimezone(UTC).isoformat(),
    }
    for name in ROW_FIELDS:
        if name.startswith("user__"):
            row[name] = getattr(user, name[6:])
    return row


def groups_by_user(provider, user_ids: list[int]) -> dict[int, list[dict]]:
    """Each user's groups of this provider, in one query for the whole page."""
    global _GROUPS_SQL
    base = provider.base_url
    groups: dict[int, list[dict]] = {user_id: [] for user_id in user_ids}
    if not user_ids:
        return groups
    if _GROUPS_SQL is None:
        _GROUPS_SQL = _sql_for_ids(
            GroupMembership.objects.filter(user_id__in=[0], group__provider_id=-1)
            .order_by("group_id")
            .values_list("user_id", Cast("group__scim_id", TextField()), "group__display_name"),
            expected_params=(-1, 0),
        )
    # The provider's id is the query's first parameter, then the IN list (checked above).
    with connection.cursor() as cursor:
        sql, ids = _with_ids(_GROUPS_SQL, user_ids)
        cursor.execute(sql, [provider.pk, *ids])
        memberships = cursor.fetchall()
    for user_id, group_scim_id, display_name in memberships:
        group_id = _uuid_text(group_scim_id)
        groups[user_id].append(
            {
                "value": group_id,
                "$ref": f"{base}/Groups/{group_id}",
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
    scim_id = row["scim_id"]
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
    manager_id = row["manager_scim_id"]
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
        "created": row["created"],
        "lastModified": row["modified"],
        "location": f"{base_url}/Users/{scim_id}",
        "version": etag_of(row["version"]),
    }
    return resource
