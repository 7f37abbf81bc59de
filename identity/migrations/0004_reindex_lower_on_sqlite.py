# SQLite's lower() folded ASCII only; Gatehouse's connections now compute LOWER(…) with
# Python's (console/sqlite3/base.py). The indexes on LOWER(username), LOWER(email) and a
# group's LOWER(display_name) are rebuilt with it, so lookups find what was stored before.
# Should two existing userNames differ only in the case of a letter beyond ASCII (they could:
# that was the bug), the unique index cannot be rebuilt, and the migration stops, naming them:
# left as it was, the index would miss every such userName and let more duplicates in.

from django.db import IntegrityError, migrations

INDEXES = ("user_username_ci_unique", "user_email_ci", "scimgroup_display_name_ci")


def reindex(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for name in INDEXES:
            try:
                cursor.execute(f'REINDEX "{name}"')
            except IntegrityError:
                cursor.execute(
                    "SELECT GROUP_CONCAT(username, ', ') FROM identity_user "
                    "GROUP BY lower(username) HAVING COUNT(*) > 1"
                )
                clashes = "; ".join(row[0] for row in cursor.fetchall())
                raise RuntimeError(
                    f"{name} cannot be rebuilt: these userNames differ only in the case of a "
                    f"letter beyond ASCII ({clashes}). Rename all but one of each (python manage.py "
                    "shell), then run python manage.py migrate again."
                ) from None


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0003_pending_deactivation_and_guard"),
        ("provisioning", "0007_removed_user_provider_date"),  # scimgroup_display_name_ci
    ]

    operations = [migrations.RunPython(reindex, migrations.RunPython.noop)]
