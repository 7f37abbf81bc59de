from django.db import migrations

# PRODUCT.md "Role": the catalogue every install starts with.
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


def seed(apps, schema_editor):
    Role = apps.get_model("identity", "Role")
    Organization = apps.get_model("identity", "Organization")
    for name, description in ROLES:
        Role.objects.get_or_create(name=name, defaults={"description": description})
    if not Organization.objects.filter(is_default=True).exists():
        root = Organization.objects.create(name="Default organization", is_default=True)
        root.default_roles.add(Role.objects.get(name="Desktop User"))


class Migration(migrations.Migration):
    dependencies = [("identity", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
