# The deprovision guard counts distinct users whose deprovision is in force, not every
# deprovision (identity/deactivation.py guard_reading_sql): its index now holds the state and
# the user too, so the count still reads the index alone.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0004_reindex_lower_on_sqlite"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="pendingdeactivation",
            name="deactivation_provider_date",
        ),
        migrations.AddIndex(
            model_name="pendingdeactivation",
            index=models.Index(
                fields=["provider", "created_at", "state", "user"],
                name="deactivation_provider_date",
            ),
        ),
    ]
