"""Where provisioned users land: organization and roles.

PRODUCT.md "Organization mapping" and "Role mapping". Until a provider has mappings
configured (a later issue), new users go to the default organization with its default roles
(roles "Manually": provisioning never changes roles afterwards).
"""

from identity.models import Organization, Role

from .models import Provider


def initial_placement(provider: Provider) -> tuple[Organization, list[Role]]:
    organization = Organization.objects.default()
    return organization, organization.effective_default_roles()
