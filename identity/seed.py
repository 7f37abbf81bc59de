"""The catalogue every install starts with: the roles of PRODUCT.md and the default
organization. Used by the data migration (with historical models) and by the test suite,
whose transactional tests flush the database (with the real ones)."""

ROLES = [
    ("Desktop User", "Backs up devices with the desktop app."),
    ("PROe User", "Legacy desktop backup user."),
    ("Agent User", "Endpoint agent user."),
    ("Identity Management Administrator", "Manages provisioning providers, mappings and logs."),
    ("Customer Cloud Admin", "Administers the whole environment."),
    ("Security Administrator", "Manages security settings and alerts."),
    ("Legal Hold Administrator", "Places and releases legal holds."),
    ("Audit Log Viewer", "Reads the audit log."),
    ("Org Admin", "Administers an organization."),
    ("Org Help Desk", "Helps users of an organization."),
]


def seed_catalogue(Role, Organization) -> None:
    """Idempotent: creates what is missing, changes nothing that exists."""
    for name, description in ROLES:
        Role.objects.get_or_create(name=name, defaults={"description": description})
    if not Organization.objects.filter(is_default=True).exists():
        root = Organization.objects.create(name="Default organization", is_default=True)
        root.default_roles.add(Role.objects.get(name="Desktop User"))
