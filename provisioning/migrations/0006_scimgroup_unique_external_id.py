# A group's externalId becomes unique per provider, as a user's is: Entra looks groups up by
# externalId and stops when it finds several. Groups pushed before this with an externalId
# another of the provider's groups already had keep their name and members, and lose only
# that duplicate externalId (the oldest group keeps it), so the constraint can be added.

from django.db import migrations, models


def forget_duplicate_external_ids(apps, schema_editor):
    ScimGroup = apps.get_model("provisioning", "ScimGroup")
    seen = set()
    duplicates = []
    groups = ScimGroup.objects.exclude(external_id="").order_by("provider_id", "id")
    for pk, provider_id, external_id in groups.values_list("id", "provider_id", "external_id"):
        if (provider_id, external_id) in seen:
            duplicates.append(pk)
        seen.add((provider_id, external_id))
    if duplicates:
        # Named in the migration's output: an IdP may look these up by externalId again.
        for pk, name, external_id in ScimGroup.objects.filter(pk__in=duplicates).values_list(
            "id", "display_name", "external_id"
        ):
            print(f"  group {pk} {name!r}: externalId {external_id!r} cleared (a duplicate)")
    ScimGroup.objects.filter(pk__in=duplicates).update(external_id="")


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0005_drop_indexes_covered_by_composites"),
    ]

    operations = [
        migrations.RunPython(forget_duplicate_external_ids, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="scimgroup",
            constraint=models.UniqueConstraint(
                condition=models.Q(("external_id", ""), _negated=True),
                fields=("provider", "external_id"),
                name="scimgroup_unique_external_id",
            ),
        ),
    ]
