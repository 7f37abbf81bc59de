"""Where provisioned users land: organization and roles.

PRODUCT.md "Organization mapping" and "Role mapping". Until a provider has mappings
configured (a later issue), new users go to the default organization with its default roles
(roles "Manually": provisioning never changes roles afterwards).
"""

from django.db import connection

from identity.models import Organization, Role
from identity.prepared import CompiledQuery, PreparedColumns

from .models import Provider

# The default organization and its default roles, sorted by name.
Placement = tuple[Organization, list[Role]]

_PLACEMENT = CompiledQuery(
    lambda: Organization.objects.filter(is_default=True).values_list(
        "id", "name", "default_roles__id", "default_roles__name"
    )
)


def initial_placement(provider: Provider) -> Placement:
    """The default organization and its default roles, in one query (it runs on every
    create). The default organization is the root, so its roles are its own: nothing is
    inherited."""
    _, rows = _PLACEMENT.run()
    return _placement(rows)


def _placement(rows) -> Placement:
    """From rows of (organization id, name, role id, role name), one per default role."""
    org_id, org_name = rows[0][0], rows[0][1]
    organization = Organization(id=org_id, name=org_name, is_default=True, parent=None)
    roles = sorted(
        (Role(id=role_id, name=role_name) for _, _, role_id, role_name in rows if role_id),
        key=lambda role: role.name,
    )
    return organization, roles


_with_placement: tuple[PreparedColumns, str] | None = None


def provider_with_placement(slug: str) -> tuple[Provider | None, Placement | None]:
    """The provider of a SCIM base URL and where a user it creates lands, in one query:
    ``POST /Users`` authenticates with the one and writes with the other, and each was a
    round trip of its own. The placement is None when there is no default organization
    (``initial_placement`` then says so)."""
    global _with_placement
    if _with_placement is None:  # written once per process
        quote = connection.ops.quote_name
        columns = PreparedColumns(Provider)
        roles = Organization.default_roles.through._meta
        org, role = quote(Organization._meta.db_table), quote(Role._meta.db_table)
        sql = (
            f"SELECT {columns.select_list()}, {org}.{quote('id')}, {org}.{quote('name')}, "
            f"{role}.{quote('id')}, {role}.{quote('name')} "
            f"FROM {quote(columns.table)} "
            f"LEFT JOIN {org} ON {org}.{quote('is_default')} "
            f"LEFT JOIN {quote(roles.db_table)} ON {quote(roles.db_table)}."
            f"{quote(roles.get_field('organization').column)} = {org}.{quote('id')} "
            f"LEFT JOIN {role} ON {role}.{quote('id')} = {quote(roles.db_table)}."
            f"{quote(roles.get_field('role').column)} "
            f"WHERE {quote(columns.table)}.{quote('slug')} = %s"
        )
        _with_placement = (columns, sql)
    columns, sql = _with_placement
    with connection.cursor() as cursor:
        cursor.execute(sql, [slug])
        rows = cursor.fetchall()
    if not rows:
        return None, None
    width = len(columns.fields)
    provider = columns.instance(rows[0][:width])
    if rows[0][width] is None:
        return provider, None
    return provider, _placement([row[width:] for row in rows])


def unchanged_condition(provider: Provider, placement: Placement) -> tuple[str, list]:
    """SQL that holds, in a statement on the provider's row, while that row and the placement
    are as ``provider`` and ``placement`` were read: every column but the link counters
    (which creates move), the default organization, its default roles. A create may then
    trust a provider an earlier request read (authentication.assumed_provider) and check it
    in its own write, instead of a round trip to read it first."""
    global _unchanged
    if _unchanged is None:  # written once per process
        quote = connection.ops.quote_name
        fields = [
            field
            for field in Provider._meta.concrete_fields
            if field.attname not in ("id", "user_count", "user_removals")
        ]
        roles = Organization.default_roles.through._meta
        org, role = quote(Organization._meta.db_table), quote(Role._meta.db_table)
        through = quote(roles.db_table)
        role_of = f"{through}.{quote(roles.get_field('role').column)}"
        org_of = f"{through}.{quote(roles.get_field('organization').column)}"
        sql = " AND ".join(f"{quote(field.column)} = %s" for field in fields)
        sql += (
            f" AND EXISTS (SELECT 1 FROM {org} WHERE {org}.{quote('id')} = %s"
            f" AND {org}.{quote('is_default')} AND {org}.{quote('name')} = %s)"
            f" AND (SELECT COUNT(*) FROM {through} JOIN {role}"
            f" ON {role}.{quote('id')} = {role_of} WHERE {org_of} = %s) = %s"
            f" AND (SELECT COUNT(*) FROM {through} JOIN {role}"
            f" ON {role}.{quote('id')} = {role_of} WHERE {org_of} = %s"
            f" AND ({role}.{quote('id')}, {role}.{quote('name')}) IN (SELECT * FROM"
            f" UNNEST(%s::bigint[], %s::text[]))) = %s"
        )
        _unchanged = (fields, sql)
    fields, sql = _unchanged
    params = [
        field.get_db_prep_save(getattr(provider, field.attname), connection) for field in fields
    ]
    organization, roles = placement
    role_ids, role_names = [role.pk for role in roles], [role.name for role in roles]
    params += [organization.pk, organization.name, organization.pk, len(roles)]
    params += [organization.pk, role_ids, role_names, len(roles)]
    return sql, params


_unchanged: tuple[list, str] | None = None
