from django.db import migrations

from identity.seed import seed_catalogue


def seed(apps, schema_editor):
    seed_catalogue(apps.get_model("identity", "Role"), apps.get_model("identity", "Organization"))


class Migration(migrations.Migration):
    dependencies = [("identity", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
