# provider_id had an index of its own besides provideruser_provider_id (provider, id) and
# provideruser_external_id (provider, external_id), which both lead with it: every create
# paid for three. The index is dropped by name; AlterField would rebuild the whole table on
# SQLite and drop and re-validate the foreign key on PostgreSQL.

import django.db.models.deletion
from django.db import migrations, models

INDEX = "provisioning_provideruser_provider_id_acfb3a67"


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0004_provideruser_external_id_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="provideruser",
                    name="provider",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="user_links",
                        to="provisioning.provider",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    f'CREATE INDEX "{INDEX}" ON "provisioning_provideruser" ("provider_id")',
                ),
            ],
        ),
    ]
