"""Reads the SCIM service and console pages share. Scoped by provider in SQL.

SECURITY BOUNDARY: every SCIM read and write of users or groups starts from one of these
querysets, so a provider can never see or touch another provider's or a local user's data.
"""

from django.db import connection
from django.db.models import QuerySet

from identity.models import User

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


def provider_user_ids_where(provider: Provider, attribute: str, value: str) -> list[int]:
    """The link ids of ``provider``'s users whose ``attribute`` equals ``value``: userName
    case-insensitively (``LOWER(col) = LOWER(%s)``, as the ``ci_exact`` lookup, served by the
    ``Lower(username)`` index) or a non-empty externalId exactly. Both name at most one user,
    so no paging. Plain SQL, as above: the filter IdPs send before every create."""
    quote = connection.ops.quote_name
    links = quote(ProviderUser._meta.db_table)
    if attribute == "username":
        users = quote(User._meta.db_table)
        sql = (
            f"SELECT {links}.{quote('id')} FROM {links} INNER JOIN {users} "
            f"ON {links}.{quote('user_id')} = {users}.{quote('id')} "
            f"WHERE {links}.{quote('provider_id')} = %s "
            f"AND LOWER({users}.{quote('username')}) = LOWER(%s)"
        )
    elif attribute == "external_id" and value:
        # "<> ''" repeats the partial unique index's condition so SQLite's planner uses it.
        sql = (
            f"SELECT {quote('id')} FROM {links} WHERE {quote('provider_id')} = %s "
            f"AND {quote('external_id')} = %s AND {quote('external_id')} <> ''"
        )
    else:
        raise ValueError(f"{attribute!r} does not name at most one user")
    with connection.cursor() as cursor:
        cursor.execute(sql, [provider.pk, value])
        return sorted(row[0] for row in cursor.fetchall())
