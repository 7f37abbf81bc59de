# The deprovision guard counts the users a provider removed (SCIM DELETE) in the last hour,
# on every deprovision of a wave: an index range instead of joining each deprovision to its
# link.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0006_scimgroup_unique_external_id"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="removedprovideruser",
            index=models.Index(fields=["provider", "removed_at"], name="removeduser_provider_date"),
        ),
    ]
