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
