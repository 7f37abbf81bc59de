"""Reads the SCIM service and console pages share. Scoped by provider in SQL.

SECURITY BOUNDARY: every SCIM read and write of users or groups starts from one of these
querysets, so a provider can never see or touch another provider's or a local user's data.
"""

from django.db import connection
from django.db.models import QuerySet

from .models import Provider, ProviderUser, ScimGroup


def provider_users(provider: Provider) -> QuerySet[ProviderUser]:
    return ProviderUser.objects.filter(provider=provider)


def provider_groups(provider: Provider) -> QuerySet[ScimGroup]:
    return ScimGroup.objects.filter(provider=provider)


def provider_user_ids_after(provider: Provider, anchor: int, count: int) -> list[int]:
    """The next ``count`` link ids of ``provider`` after ``anchor`` (keyset paging), as one
    index walk on (provider, id). Plain SQL: the hottest read of a full sync, and building
    it through the ORM cost more than running it."""
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {quote('id')} FROM {quote(ProviderUser._meta.db_table)} "
        f"WHERE {quote('provider_id')} = %s AND {quote('id')} > %s "
        f"ORDER BY {quote('id')} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [provider.pk, anchor, count])
        return [row[0] for row in cursor.fetchall()]
