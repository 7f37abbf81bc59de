"""Where provisioned users land: organization and roles.

PRODUCT.md "Organization mapping" and "Role mapping". Until a provider has mappings
configured (a later issue), new users go to the default organization with its default roles
(roles "Manually": provisioning never changes roles afterwards).
"""

from django.db import connection

from identity.models import Organization, Role

from .models import Provider

_PLACEMENT_SQL: tuple[str, list] | None = None


def initial_placement(provider: Provider) -> tuple[Organization, list[Role]]:
    """The default organization and its default roles, in one query (it runs on every
    create). The default organization is the root, so its roles are its own: nothing is
    inherited."""
    global _PLACEMENT_SQL
    if _PLACEMENT_SQL is None:  # the ORM's SQL, compiled once per process
        sql, params = (
            Organization.objects.filter(is_default=True)
            .values_list("id", "name", "default_roles__id", "default_roles__name")
            .query.sql_with_params()
        )
        _PLACEMENT_SQL = (sql, list(params))
    with connection.cursor() as cursor:
        cursor.execute(*_PLACEMENT_SQL)
        rows = cursor.fetchall()
    org_id, org_name = rows[0][0], rows[0][1]
    organization = Organization(id=org_id, name=org_name, is_default=True, parent=None)
    roles = sorted(
        (Role(id=role_id, name=role_name) for _, _, role_id, role_name in rows if role_id),
        key=lambda role: role.name,
    )
    return organization, roles
