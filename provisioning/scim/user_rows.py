"""Render SCIM users straight from database rows, without building model instances.

A list page of 100 users through the ORM builds ~300 model instances (link, user, manager)
and spends most of its time there; reading ``values()`` rows keeps a page within a few
milliseconds. Writes still go through models and services; this module is read-only.
"""

from __future__ import annotations

import hashlib
from datetime import UTC
from typing import Any

import orjson
from django.db import connection
from django.db.models import TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from identity.prepared import CompiledQuery
from provisioning.models import Provider, ProviderUser
from provisioning.selectors import provider_users, user_groups_sql

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


def uuid_text(value: str | None) -> str | None:
    # SQLite stores the 32 hex digits; PostgreSQL's uuid as text is already dashed.
    if value is not None and len(value) == 32:
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return value


def _rows_query(queryset=None):
    # Timestamps and UUIDs read as text: converting them to Python objects (a regex per
    # timestamp on SQLite, UUID and tz-aware datetime loaders on PostgreSQL) cost more than
    # the rest of a page, and the response wants text anyway. The user's groups come in the
    # same statement (selectors.user_groups_sql).
    text = TextField()
    if queryset is None:
        queryset = ProviderUser.objects.filter(id__in=[0])
    return queryset.values(
        *ROW_FIELDS,
        scim_text=Cast("scim_id", text),
        manager_scim_text=Cast("user__manager__provider_link__scim_id", text),
        created=Cast("user__created_at", text),
        modified=Cast("user__updated_at", text),
        groups_json=RawSQL(user_groups_sql(), ()),
    )


def rows_from(names: list[str], fetched: list[tuple]) -> list[dict[str, Any]]:
    """The rows of a statement of this module, as plain dicts (also for one read elsewhere,
    ``rows_where_statement``)."""
    rows = []
    for values in fetched:
        row = dict(zip(names, values, strict=True))
        row["scim_id"] = uuid_text(row.pop("scim_text"))
        row["manager_scim_id"] = uuid_text(row.pop("manager_scim_text"))
        row["created"] = _iso(row["created"])
        row["modified"] = _iso(row["modified"])
        row["groups"] = parse_groups(row.pop("groups_json"))
        rows.append(row)
    return rows


def parse_groups(text: str | None) -> list[tuple[str, str]]:
    """``(scim id, displayName)`` of each group in ``user_groups_sql``'s JSON, by group."""
    if not text:
        return []
    return [(uuid_text(scim_id), name) for _, scim_id, name in sorted(orjson.loads(text))]


def rows_by_ids(ids: list[int]) -> list[dict[str, Any]]:
    """The rows of these link ids, in the order given, as plain dicts (timestamps as ISO
    text, ids as UUID text, ``groups`` as ``parse_groups`` gives them)."""
    global _ROWS_SQL
    if not ids:
        return []
    if _ROWS_SQL is None:
        _ROWS_SQL = _sql_for_ids(_rows_query())
    with connection.cursor() as cursor:
        cursor.execute(*_with_ids(_ROWS_SQL, ids))
        names = [column[0] for column in cursor.description]
        fetched = cursor.fetchall()
    by_id = {row["id"]: row for row in rows_from(names, fetched)}
    return [by_id[i] for i in ids if i in by_id]


_ROWS_AFTER = CompiledQuery(
    lambda: _rows_query(provider_users(Provider(pk=-1)).filter(id__gt=-2).order_by("id")),
    -1,
    -2,
    suffix=" LIMIT %s",
)


def rows_after(provider: Provider, anchor: int, count: int) -> list[dict[str, Any]]:
    """The rows of ``provider``'s next ``count`` users after link id ``anchor`` (keyset
    paging): the page and its rows in one statement, an index walk on (provider, id). What a
    first page and every page of a sequential walk (Okta's import) read."""
    return rows_from(*_ROWS_AFTER.run(provider.pk, anchor, count))


# The filter every IdP sends before it creates or links a user, each naming at most one.
_ROWS_WHERE = {
    # userName case-insensitively: the ci_exact lookup the Lower(username) index serves.
    "username": CompiledQuery(
        lambda: _rows_query(
            provider_users(Provider(pk=-1)).filter(user__username__ci_exact="?").order_by("id")
        ),
        -1,
        "?",
    ),
    # A non-empty externalId exactly; "<> ''" repeats the partial unique index's condition.
    "external_id": CompiledQuery(
        lambda: _rows_query(
            provider_users(Provider(pk=-1))
            .filter(external_id="?")
            .exclude(external_id="")
            .order_by("id")
        ),
        -1,
        "?",
    ),
}


def _unique_equality(attribute: str, value: str) -> CompiledQuery:
    if attribute not in _ROWS_WHERE or not value:
        raise ValueError(f"{attribute!r} = {value!r} does not name at most one user")
    return _ROWS_WHERE[attribute]


def rows_where_statement(provider_id: int, attribute: str, value: str) -> tuple[str, list]:
    """The SQL and parameters ``rows_where`` runs; its result goes through ``rows_from``."""
    return _unique_equality(attribute, value).statement(provider_id, value)


def rows_where(provider: Provider, attribute: str, value: str) -> list[dict[str, Any]]:
    """The rows of ``provider``'s users whose userName equals ``value`` case-insensitively
    (``attribute="username"``) or whose non-empty externalId equals it exactly
    (``"external_id"``): at most one user, in one statement."""
    return rows_from(*_unique_equality(attribute, value).run(provider.pk, value))


def row_from_link(link: ProviderUser, groups_json: str | None) -> dict[str, Any] | None:
    """The row ``rows_by_ids`` would read for this link, from the instances a write just
    saved (or a GET just read): no second read of the user. ``groups_json`` as
    ``user_groups_sql`` gives it. None when the user has a manager (its SCIM id is another
    row: read it with ``rows_by_ids``)."""
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
        "groups": parse_groups(groups_json),
    }
    for name in ROW_FIELDS:
        if name.startswith("user__"):
            row[name] = getattr(user, name[6:])
    return row


def group_refs(groups: list[tuple[str, str]], base_url: str) -> list[dict]:
    """A user's ``groups`` attribute (RFC 7643 §4.1.2) from ``parse_groups``' pairs."""
    return [
        {"value": scim_id, "$ref": f"{base_url}/Groups/{scim_id}", "display": name,
         "type": "direct"}
        for scim_id, name in groups
    ]  # fmt: skip


def etag_of(version: int, groups: list[tuple[str, str]], namespace: str = "") -> str:
    """A user's ``meta.version``: its row's version, the groups its representation lists
    (``parse_groups``' pairs), and the provider's own namespace its organization attribute is
    shown in (``org_namespace``): both change without the user's row (a membership, a group
    renamed, the provider's namespace). RFC 7644 §3.14: the version changes whenever the
    resource does, so a client's If-None-Match never keeps a stale copy and its If-Match
    never passes on one."""
    if not groups and not namespace:
        return f'W/"{version}"'
    listed = "\n".join(f"{scim_id}\t{name}" for scim_id, name in groups)
    if namespace:
        listed += f"\n{namespace}"
    return f'W/"{version}.{hashlib.blake2b(listed.encode(), digest_size=6).hexdigest()}"'


def org_namespace(org_attribute: str, provider_schema: str) -> str:
    """The provider's own namespace a user's organization attribute is shown in, or ""
    (none kept, or Gatehouse's own)."""
    return provider_schema if org_attribute and provider_schema else ""


def resource_from_row(
    row: dict[str, Any], base_url: str, groups: list | None, *, namespace: str = ""
) -> dict:
    """The SCIM representation of a provisioned user. Empty attributes are left out
    (RFC 7643 §2.5: unassigned and null are equivalent)."""
    scim_id = row["scim_id"]
    # RFC 7643 §3: schemas names the schemas of the attributes present; the extensions are
    # added below with their objects.
    schemas = [CORE_USER]
    resource: dict[str, Any] = {"schemas": schemas}
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
        schemas.append(ENTERPRISE_USER)
    if row["org_attribute"]:
        # In the extension the provider sends it in (``namespace``,
        # Provider.org_attribute_schema), else Gatehouse's own.
        org_schema = namespace or GATEHOUSE_USER
        resource[org_schema] = {ORG_ATTRIBUTE: row["org_attribute"]}
        schemas.append(org_schema)
    if groups is not None:
        resource["groups"] = groups
    resource["meta"] = {
        "resourceType": "User",
        "created": row["created"],
        "lastModified": row["modified"],
        "location": f"{base_url}/Users/{scim_id}",
        "version": etag_of(
            row["version"], row["groups"], org_namespace(row["org_attribute"], namespace)
        ),
    }
    return resource
