"""Reads the SCIM service and console pages share. Scoped by provider in SQL.

SECURITY BOUNDARY: every SCIM read and write of users or groups starts from one of these
querysets, so a provider can never see or touch another provider's or a local user's data.
"""

from django.db import connection
from django.db.models import QuerySet

from identity.models import OPEN_DEACTIVATION_STATES, PendingDeactivation, User
from identity.prepared import PreparedColumns, sent_together

from .models import GroupMembership, Provider, ProviderUser, ScimGroup


def provider_users(provider: Provider) -> QuerySet[ProviderUser]:
    return ProviderUser.objects.filter(provider=provider)


def hold_linked(provider: Provider, user_ids: list[int]) -> set[int]:
    """Of these users, the ones still linked to ``provider``, their links locked ``FOR KEY
    SHARE`` until the transaction ends (PostgreSQL; elsewhere one writer at a time, and all
    are returned). A write that names another user (its manager, a new group member) holds
    that user's link: a DELETE of the user, which locks the link ``FOR UPDATE`` before it
    releases reports and memberships (user_sync.remove_user), waits for the write and then
    undoes what it wrote, or went first, and the link is gone here. Without it, both
    committed: a report named a deleted manager, a group kept a deleted member."""
    if connection.vendor != "postgresql" or not user_ids:
        return set(user_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id FROM provisioning_provideruser WHERE provider_id = %s "
            "AND user_id = ANY(%s) ORDER BY id FOR KEY SHARE",
            [provider.pk, sorted(set(user_ids))],
        )
        return {row[0] for row in cursor.fetchall()}


def hold_linked_or_fail(provider: Provider, user_id: int) -> tuple[str, list]:
    """``hold_linked`` of one user as a statement that reads nothing back, for a pipeline
    (``synclog.later.one_transaction``): it divides by the number of links held, so it
    fails the transaction (SQLSTATE 22012, division by zero) when the link is gone."""
    return (
        "SELECT 1 / (SELECT count(*) FROM (SELECT 1 FROM provisioning_provideruser "
        "WHERE provider_id = %s AND user_id = %s FOR KEY SHARE) AS held)",
        [provider.pk, user_id],
    )


def provider_groups(provider: Provider) -> QuerySet[ScimGroup]:
    return ScimGroup.objects.filter(provider=provider)


def user_groups_sql() -> str:
    """A scalar subquery for a SELECT over the provider-user link table: the link's user's
    groups *of the link's provider*, as JSON text ``[[group pk, scim id, displayName], …]``.

    Reading them in the same statement as the user saves a round trip on every SCIM read of
    users. PostgreSQL orders the array by group; SQLite (before 3.44) cannot order inside
    ``json_group_array``, so readers sort by the group pk (user_rows.parse_groups)."""
    quote = connection.ops.quote_name
    links = quote(ProviderUser._meta.db_table)
    members = quote(GroupMembership._meta.db_table)
    groups = quote(ScimGroup._meta.db_table)
    pk, scim_id, name = (f"{groups}.{quote(c)}" for c in ("id", "scim_id", "display_name"))
    if connection.vendor == "postgresql":
        array = (
            f"COALESCE(json_agg(json_build_array({pk}, {scim_id}, {name}) ORDER BY {pk}), "
            f"'[]'::json)::text"
        )
    else:
        array = f"json_group_array(json_array({pk}, {scim_id}, {name}))"
    return (
        f"SELECT {array} FROM {members} INNER JOIN {groups} "
        f"ON {members}.{quote('group_id')} = {pk} "
        f"WHERE {members}.{quote('user_id')} = {links}.{quote('user_id')} "
        f"AND {groups}.{quote('provider_id')} = {links}.{quote('provider_id')}"
    )


def group_members_sql() -> str:
    """A scalar subquery for a SELECT over the group table, with one parameter (the
    provider): the group's members that this provider still provisions, as JSON text
    ``[[membership pk, user scim id], …]``. Read in the statement that reads the group, so
    its version and its members come from one snapshot: read one after the other, a PATCH
    committing in between served one version with two different memberships. SQLite (before
    3.44) cannot order inside ``json_group_array``: readers sort by the membership pk."""
    quote = connection.ops.quote_name
    members = quote(GroupMembership._meta.db_table)
    links = quote(ProviderUser._meta.db_table)
    groups = quote(ScimGroup._meta.db_table)
    pk, scim_id = f"{members}.{quote('id')}", f"{links}.{quote('scim_id')}"
    if connection.vendor == "postgresql":
        array = f"COALESCE(json_agg(json_build_array({pk}, {scim_id}) ORDER BY {pk}), '[]')::text"
    else:
        array = f"json_group_array(json_array({pk}, {scim_id}))"
    return (
        f"SELECT {array} FROM {members} INNER JOIN {links} "
        f"ON {links}.{quote('user_id')} = {members}.{quote('user_id')} "
        f"WHERE {members}.{quote('group_id')} = {groups}.{quote('id')} "
        f"AND {links}.{quote('provider_id')} = %s"
    )


_LINK_WITH_USER: dict[bool, tuple] = {}


def provider_user_by_scim_id(
    provider: Provider, scim_id, *, for_update: bool = False, open_deactivation: bool = False
):
    """``provider``'s link with this SCIM id, its user loaded (and its provider set), or None.
    ``for_update``: the link and its user are row-locked together (PostgreSQL ``FOR UPDATE``;
    SQLite's IMMEDIATE transaction already holds the write lock). The user's groups of this
    provider come along as ``link.groups_json`` (JSON text, see ``user_groups_sql``).

    ``open_deactivation`` (with ``for_update``, on PostgreSQL): the user's open deactivation
    comes along too, row-locked after the user, as ``link.open_deactivation`` (a row or
    None), read in the same round trip (a pipeline): what ``identity.services`` asks first
    when a provider says active=true for a blocked user.

    The same instances as ``provider_users(provider).select_related("user")`` would build,
    from SQL written once per process (identity/prepared.py): the read every GET, PUT,
    PATCH and DELETE by id starts with."""
    statement = link_by_scim_id_statement(provider.pk, scim_id, for_update=for_update)
    with_open = open_deactivation and for_update and connection.vendor == "postgresql"
    if with_open:
        pending_sql, pending_columns = _open_deactivation_of_link()
        pending_params = [*statement[1], *OPEN_DEACTIVATION_STATES]  # provider, SCIM id
        with sent_together(statement, (pending_sql, pending_params)) as (cursor, pending):
            row, open_row = cursor.fetchone(), pending.fetchone()
    else:
        with connection.cursor() as cursor:
            cursor.execute(*statement)
            row = cursor.fetchone()
    if row is None:
        return None
    link = link_from_row(row, provider)
    if with_open:
        link.open_deactivation = None if open_row is None else pending_columns.instance(open_row)
    return link


def _link_with_user(for_update: bool) -> tuple[str, PreparedColumns, PreparedColumns]:
    if for_update not in _LINK_WITH_USER:
        quote = connection.ops.quote_name
        links, users = PreparedColumns(ProviderUser), PreparedColumns(User)
        sql = (
            f"SELECT {links.select_list()}, {users.select_list()}, ({user_groups_sql()}) "
            f"FROM {quote(links.table)} INNER JOIN {quote(users.table)} "
            f"ON {quote(links.table)}.{quote('user_id')} = {quote(users.table)}.{quote('id')} "
            f"WHERE {quote(links.table)}.{quote('provider_id')} = %s "
            f"AND {quote(links.table)}.{quote('scim_id')} = %s"
        )
        if for_update and connection.features.has_select_for_update:
            # Every row of the join: the link and its user. NO KEY UPDATE, as PostgreSQL's
            # own UPDATE locks: a foreign-key check on the user (another user's manager set
            # to it, a group membership added) takes KEY SHARE, which plain FOR UPDATE
            # blocks. Two users made each other's manager at once deadlocked on it.
            no_key = connection.features.has_select_for_no_key_update
            sql += " FOR NO KEY UPDATE" if no_key else " FOR UPDATE"
        _LINK_WITH_USER[for_update] = (sql, links, users)
    return _LINK_WITH_USER[for_update]


def link_by_scim_id_statement(
    provider_id: int, scim_id, *, for_update: bool = False
) -> tuple[str, list]:
    """The SQL and parameters of ``provider_user_by_scim_id``, also to send elsewhere
    (authentication's read ahead); its row goes through ``link_from_row``."""
    sql, _, _ = _link_with_user(for_update)
    key = ProviderUser._meta.get_field("scim_id").get_db_prep_value(scim_id, connection)
    return sql, [provider_id, key]


def link_from_row(row, provider: Provider) -> ProviderUser:
    """The link, its user and its groups' JSON from a row of the statement above."""
    _, links, users = _link_with_user(False)
    split = len(links.fields)
    link = links.instance(row[:split])
    link.user = users.instance(row[split:-1])
    link.provider = provider
    link.groups_json = row[-1]
    return link


_OPEN_OF_LINK: tuple | None = None


def _open_deactivation_of_link() -> tuple[str, PreparedColumns]:
    """The open deactivation of the user a link (provider, SCIM id) names, row-locked: the
    statement ``identity.services`` reads by user id, by the link's user instead, so that it
    can go out with the link's own read."""
    global _OPEN_OF_LINK
    if _OPEN_OF_LINK is None:
        quote = connection.ops.quote_name
        pending = PreparedColumns(PendingDeactivation)
        links = quote(ProviderUser._meta.db_table)
        states = ", ".join(["%s"] * len(OPEN_DEACTIVATION_STATES))
        sql = (
            f"SELECT {pending.select_list()} FROM {quote(pending.table)} "
            f"WHERE {quote(pending.table)}.{quote('user_id')} = ("
            f"SELECT {quote('user_id')} FROM {links} WHERE {quote('provider_id')} = %s "
            f"AND {quote('scim_id')} = %s) "
            f"AND {quote(pending.table)}.{quote('state')} IN ({states}) FOR UPDATE"
        )
        _OPEN_OF_LINK = (sql, pending)
    return _OPEN_OF_LINK
