# provider_id had an index of its own besides synclog_provider_date (provider_id,
# -created_at), which leads with it: every sync row paid for both. Dropped by name;
# AlterField would rebuild the whole (large) table on SQLite.

from django.db import migrations, models

INDEX = "synclog_synclogentry_provider_id_71b55dd7"


class Migration(migrations.Migration):
    dependencies = [
        ("synclog", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="synclogentry",
                    name="provider_id",
                    field=models.BigIntegerField(null=True),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    f'CREATE INDEX "{INDEX}" ON "synclog_synclogentry" ("provider_id")',
                ),
            ],
        ),
    ]
