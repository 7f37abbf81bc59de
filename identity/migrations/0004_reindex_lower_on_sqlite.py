# SQLite's lower() folded ASCII only; Gatehouse's connections now compute LOWER(…) with
# Python's (console/sqlite3/base.py). The indexes on LOWER(username), LOWER(email) and a
# group's LOWER(display_name) are rebuilt with it, so lookups find what was stored before.
# Should two existing userNames differ only in the case of a letter beyond ASCII (they could:
# that was the bug), the unique index cannot be rebuilt; the migration says which and goes
# on, leaving that index as it was, rather than stopping an upgrade.

import logging

from django.db import IntegrityError, migrations

logger = logging.getLogger("gatehouse.migrations")

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
                logger.warning(
                    "%s not rebuilt: these userNames differ only in case (%s). Rename all but "
                    "one of each, then run this again: python manage.py migrate identity 0003 "
                    "&& python manage.py migrate (not the sqlite3 shell: its lower() is "
                    "SQLite's own)",
                    name,
                    clashes,
                )


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0003_pending_deactivation_and_guard"),
        ("provisioning", "0007_removed_user_provider_date"),  # scimgroup_display_name_ci
    ]

    operations = [migrations.RunPython(reindex, migrations.RunPython.noop)]
