"""Where provisioned users land: organization and roles.

PRODUCT.md "Organization mapping" and "Role mapping". Until a provider has mappings
configured (a later issue), new users go to the default organization with its default roles
(roles "Manually": provisioning never changes roles afterwards).
"""

from identity.models import Organization, Role
from identity.prepared import CompiledQuery

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
    org_id, org_name = rows[0][0], rows[0][1]
    organization = Organization(id=org_id, name=org_name, is_default=True, parent=None)
    roles = sorted(
        (Role(id=role_id, name=role_name) for _, _, role_id, role_name in rows if role_id),
        key=lambda role: role.name,
    )
    return organization, roles
