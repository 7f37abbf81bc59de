"""Write what a provider says about a user: create, update, remove.

Called by the SCIM layer inside the request's transaction with a fully staged state
(provisioning/scim/users.py). Validates everything first, then writes the user, its link,
one sync-log row per changed attribute and the audit row. Lifecycle changes (active) go to
``identity.services``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from identity import keys
from identity import services as identity_services
from identity.countries import ISO_3166_ALPHA_2
from identity.models import User, UserStatus
from identity.validators import other_spelling, validate_username
from identity.writes import insert, insert_later, update_columns, update_columns_later
from synclog import later, record
from synclog.models import SyncChange
from synclog.record import Actor

from . import mapping
from .models import GroupMembership, Provider, ProviderUser, RemovedProviderUser, ScimGroup
from .selectors import hold_linked, hold_linked_or_fail, provider_users


class ProvisioningError(ValueError):
    """A push that cannot be applied. ``kind`` tells the SCIM layer which error to answer."""

    def __init__(self, message: str, kind: str = "invalid"):
        super().__init__(message)
        self.kind = kind  # "invalid" → 400 invalidValue, "conflict" → 409 uniqueness


# Attributes stored on the user row (the rest live on the provider link).
USER_COLUMNS = {
    "username": "username",
    "display_name": "display_name",
    "given_name": "given_name",
    "family_name": "family_name",
    "title": "title",
    "user_type": "user_type",
    "email": "email",
    "locality": "locality",
    "region": "region",
    "country": "country",
    "employee_number": "employee_number",
    "department": "department",
    "division": "division",
}
LINK_COLUMNS = {"external_id": "external_id", "org_attribute": "org_attribute"}


def _unknown_manager(state: dict) -> ProvisioningError:
    return ProvisioningError(
        f"manager {state['manager']!r} is not a user this provider provisioned; "
        "push the manager first."
    )


def _exists_as_before(username: str) -> bool:
    try:
        validate_email(username)
    except ValidationError:
        return False
    return User.objects.filter(username__ci_exact=username).exists()


def _check_other_spelling(username: str, link: ProviderUser | None) -> None:
    """An internationalized domain has two spellings of one address (münchen.de and
    xn--mnchen-3ya.de), which the userName index, comparing text, tells apart: a new
    userName must not be an existing user's other spelling. Plain ASCII domains (nearly all)
    read nothing here."""
    other = other_spelling(username)
    if other is None:
        return
    taken = User.objects.filter(username__ci_exact=other)
    if link is not None:
        taken = taken.exclude(pk=link.user_id)
    if taken.exists():
        raise ProvisioningError(
            f"A user with userName {other!r} already exists: {username!r} is the same address "
            "with its domain spelled the other way.",
            kind="conflict",
        )


def _validated(provider: Provider, state: dict[str, Any], link: ProviderUser | None) -> dict:
    """Check every staged value; return the state with the manager resolved to a user."""
    state = dict(state)
    if not state["username"]:  # a PATCH that removes it, or replaces it with null or ""
        raise ProvisioningError("userName is required: it cannot be removed or emptied.")
    # A userName kept from before is checked as it was then: a stricter rule must not stop
    # the PATCH that deprovisions a user named before it.
    renamed = link is None or state["username"] != link.user.username
    try:
        (validate_username if renamed else validate_email)(state["username"])
    except ValidationError as exc:
        # A create naming a user that exists (named before the rule, and DELETEd: taken
        # back if it was this provider's) is judged by the collision checks, not refused.
        if not (link is None and _exists_as_before(state["username"])):
            reason = f": {exc.messages[0]}" if exc.code == "noncanonical" else "."
            raise ProvisioningError(
                f"userName {state['username']!r} is not a valid email address{reason}"
            ) from None
        renamed = False
    if renamed:
        _check_other_spelling(state["username"], link)
    if state["email"]:
        try:
            validate_email(state["email"])
        except ValidationError:
            raise ProvisioningError(f"email {state['email']!r} is not a valid address.") from None
    if state["country"]:
        country = state["country"].upper()
        if country not in ISO_3166_ALPHA_2:
            raise ProvisioningError(
                f"country {state['country']!r} is not an ISO 3166-1 alpha-2 code "
                "(two letters, such as US); map a 2-letter code such as usageLocation."
            )
        state["country"] = country
    # Every stored string is checked: SQLite would keep an over-long value, PostgreSQL would
    # fail the write with a 500; the IdP must get a 400 naming the attribute.
    columns = [(f, User, c) for f, c in USER_COLUMNS.items()]
    columns += [(f, ProviderUser, c) for f, c in LINK_COLUMNS.items()]
    for field, model, column in columns:
        limit = model._meta.get_field(column).max_length
        if limit is not None and len(state[field]) > limit:
            from .scim.users import SCIM_NAMES  # names as the IdP knows them

            raise ProvisioningError(f"{SCIM_NAMES[field]} is longer than {limit} characters.")
    manager = None
    if state["manager"]:
        manager_link = (
            provider_users(provider)
            .filter(scim_id=_uuid_or_none(state["manager"]))
            .select_related("user")
            .first()
            if _uuid_or_none(state["manager"])
            else None
        )
        if manager_link is None:
            raise _unknown_manager(state)
        if link is not None and manager_link.user_id == link.user_id:
            raise ProvisioningError("A user cannot be their own manager.")
        # A new manager's link held until this transaction ends (hold_linked); a create
        # holds it in its own transaction, which begins after this (create_user).
        changes = link is None or link.user.manager_id != manager_link.user_id
        needs_hold = changes and connection.in_atomic_block
        if needs_hold and not hold_linked(provider, [manager_link.user_id]):
            raise _unknown_manager(state)  # DELETEd while this request ran
        manager = manager_link.user
    state["manager_user"] = manager
    return state


def _count_link(provider: Provider, delta: int, unchanged: tuple[str, list] | None = None) -> None:
    """Keep Provider.user_count exact, in the transaction that adds or removes the link.
    Plain SQL: every create runs it, and compiling an F() update cost more than running it.

    ``unchanged`` (``mapping.unchanged_condition``): the write goes on only while the
    provider's row still holds what it says; else the count's division by zero fails the
    statement, and with it the transaction (``StaleProvider``). The row lock this UPDATE
    takes orders it after a concurrent change of the provider, which it then sees."""
    quote = connection.ops.quote_name
    count, removals = quote("user_count"), quote("user_removals")
    removed = f", {removals} = {removals} + 1" if delta < 0 else ""
    step, params = "%s", [delta]
    if unchanged is not None:
        step = f"%s / (CASE WHEN {unchanged[0]} THEN 1 ELSE 0 END)"
        params += unchanged[1]
    # Through synclog.later: nothing in the request reads the count back. Sent last, it
    # also holds the provider row's lock (every create of the provider takes it) shortest.
    later.run(
        f"UPDATE {quote(Provider._meta.db_table)} SET {count} = {count} + {step}{removed} "
        f"WHERE {quote('id')} = %s",
        [*params, provider.pk],
    )


class StaleProvider(Exception):
    """A create trusting a provider read by an earlier request (``assumed``) could not be
    made as the one write that checks it: nothing was written; read the provider and check
    the credential, then create as usual. ``stale``: the check found the provider changed
    (otherwise the create needed more than that write: a manager, a collision...)."""

    def __init__(self, *, stale: bool = False):
        super().__init__("stale provider" if stale else "not a one-write create")
        self.stale = stale


_DIVISION_BY_ZERO = "22012"  # SQLSTATE: _count_link's check, or hold_linked_or_fail's, failed


def _uuid_or_none(value: str):
    import uuid

    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _check_collisions(provider: Provider, state: dict, link: ProviderUser | None) -> User | None:
    """The user this userName already names, if one may be adopted; errors on collisions."""
    existing = (
        User.objects.select_related("provider_link")
        .filter(username__ci_exact=state["username"])
        .first()
    )
    if existing is not None and (link is None or existing.pk != link.user_id):
        if existing.is_local:
            raise ProvisioningError(
                f"userName {state['username']!r} belongs to a local user managed in the "
                "console; providers cannot create or change local users.",
                kind="conflict",
            )
        other = getattr(existing, "provider_link", None)
        if other is not None and other.provider_id != provider.pk:
            raise ProvisioningError(
                f"userName {state['username']!r} is already provisioned by another provider.",
                kind="conflict",
            )
        if other is not None:
            raise ProvisioningError(
                f"A user with userName {state['username']!r} already exists.", kind="conflict"
            )
        removed_by = RemovedProviderUser.objects.filter(user=existing).first()
        if link is not None and removed_by is not None and removed_by.provider_id == provider.pk:
            # The provider's filter no longer shows that user, so "already exists" left the
            # IdP nothing to act on.
            raise ProvisioningError(
                f"userName {state['username']!r} belongs to a user this provider deleted or "
                "deprovisioned earlier, whose account is kept; another user cannot be renamed "
                "to it. Creating a user with this userName takes that user back.",
                kind="conflict",
            )
        if link is not None or removed_by is None or removed_by.provider_id != provider.pk:
            # Only the provider that removed a user may take it back.
            raise ProvisioningError(
                f"userName {state['username']!r} belongs to a user this provider did not "
                "provision.",
                kind="conflict",
            )
    if state["external_id"]:
        # "<> ''" repeats the partial unique index's condition so SQLite's planner uses it.
        clash = (
            provider_users(provider)
            .filter(external_id=state["external_id"])
            .exclude(external_id="")
        )
        if link is not None:
            clash = clash.exclude(pk=link.pk)
        if clash.exists():
            raise ProvisioningError(
                f"externalId {state['external_id']!r} is already used by another user.",
                kind="conflict",
            )
    return existing if link is None else None


def _take_back(provider: Provider, user: User, state: dict, *, actor: Actor) -> ProviderUser:
    """A user this provider removed, pushed again: linked back, then updated as pushed."""
    user = User.objects.select_for_update(no_key=True).get(pk=user.pk)
    RemovedProviderUser.objects.filter(user=user).delete()
    # Its removal took it out of the provider's groups; a membership that a group PATCH
    # resolving the user just before that removal committed afterwards would otherwise come
    # back with the link. A user pushed again starts in no group (as documented).
    GroupMembership.objects.filter(user=user, group__provider=provider).delete()
    # The new link carries what the push says of it (externalId …): its removal took the old
    # one, and a diff against an empty link would log "'' → '00u1'" for a value that never
    # changed. The user's own attributes are compared and logged below, as for any update.
    link = ProviderUser(
        provider=provider, user=user, **{column: state[f] for f, column in LINK_COLUMNS.items()}
    )
    if not insert(link, ignore_conflicts=True):  # the (provider, externalId) index decides
        # Or a concurrent push took the same user back first (the link is one per user).
        raise ProvisioningError(
            f"externalId {state['external_id']!r} is already used by another user, or the "
            "user was pushed again at the same time; retry.",
            kind="conflict",
        )
    _count_link(provider, +1)
    # Reports a DELETE released no longer name it; any still naming it were left by a
    # DELETE before releases were made, and are released now, not shown again.
    _release_reports(provider, user, actor=actor)
    # PRODUCT.md "Sync log": the provider's log shows the user added to it as a create
    # does, with every value pushed; _apply adds what the push cleared of the kept person
    # (old value → nothing), and the status changes.
    added = [(SyncChange.USER_ADDED, "userName", None, user.username), *_added_values(state)]
    record.sync_changes(actor=actor, user_id=user.pk, user_label=user.username, changes=added)
    record.audit(actor=actor, action="user_added", target_label=user.username)
    return _apply(link, state, actor=actor, adopting=True)


def create_user(
    provider: Provider,
    state: dict[str, Any],
    *,
    actor: Actor,
    placement: mapping.Placement | None = None,
    assumed: bool = False,
) -> ProviderUser:
    """POST /Users, as one transaction of its own (or part of the caller's, when it has one).
    A non-local user this provider removed earlier is taken back. ``placement``: the default
    organization and roles, when the caller read them already (with the credential).

    Most pushes are new people, so the insert is tried first and a collision (rare) is
    explained afterwards: no lookup runs before every create. On PostgreSQL an active new
    user is written in one round trip, COMMIT included (``synclog.later.one_transaction``,
    the user's key taken ahead by ``identity.keys``); a collision there writes nothing and
    the checked path below runs, reading what collided.

    ``assumed``: ``provider`` and ``placement`` are as an earlier request read them
    (authentication.assumed_provider), not read by this one. Only that one-round-trip write
    runs then, checking them as it writes (``_count_link``); anything else raises
    ``StaleProvider`` with nothing written or read."""
    one_round_trip = state["active"] and keys.available() and not connection.in_atomic_block
    if assumed:
        if not one_round_trip or state["manager"] or placement is None:
            raise StaleProvider  # a read (the manager) must not precede the check
        state = _validated(provider, state, None)
        try:
            with later.one_transaction():
                unchanged = mapping.unchanged_condition(provider, placement)
                return _insert_new(
                    provider, state, placement, actor=actor, keyed=True, unchanged=unchanged
                )
        except DatabaseError as exc:  # a collision, or the provider changed: nothing written
            stale = getattr(exc.__cause__, "sqlstate", None) == _DIVISION_BY_ZERO
            raise StaleProvider(stale=stale) from None
    state = _validated(provider, state, None)
    placement = placement or mapping.initial_placement(provider)
    manager = state["manager_user"]
    if one_round_trip:
        try:
            with later.one_transaction():
                if manager is not None:  # held first, in the same round trip
                    later.run(*hold_linked_or_fail(provider, manager.pk))
                return _insert_new(provider, state, placement, actor=actor, keyed=True)
        except IntegrityError:
            pass  # userName or externalId taken (or a race): explained below
        except DatabaseError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != _DIVISION_BY_ZERO:
                raise
            raise _unknown_manager(state) from None  # DELETEd since _validated read it
    with later.transaction():  # a savepoint only inside a caller's transaction
        # _validated read the manager before this transaction began: read (PostgreSQL:
        # hold) it again inside, or a DELETE committed in between goes unseen.
        if manager is not None and not _still_linked(provider, manager):
            raise _unknown_manager(state)
        return _insert_new(provider, state, placement, actor=actor, keyed=False)


def _still_linked(provider: Provider, user: User) -> bool:
    if connection.vendor == "postgresql":
        return bool(hold_linked(provider, [user.pk]))
    # One writer at a time (SQLite's IMMEDIATE transaction): a read inside it is enough.
    return provider_users(provider).filter(user_id=user.pk).exists()


def _insert_new(
    provider: Provider,
    state: dict,
    placement: mapping.Placement,
    *,
    actor: Actor,
    keyed: bool,
    unchanged: tuple[str, list] | None = None,
) -> ProviderUser:
    """The rows of a new user: the user, its link, roles, count and history. ``keyed``: the
    user's key taken ahead and every write queued (inside ``later.one_transaction``);
    otherwise each insert asks the unique indexes and a collision is explained (or the
    user taken back)."""
    organization, roles = placement
    now = timezone.now()
    user = User(
        organization=organization,
        manager=state["manager_user"],
        created_at=now,
        updated_at=now,
        **{column: state[field] for field, column in USER_COLUMNS.items()},
    )
    user.set_unusable_password()
    link = ProviderUser(
        provider=provider,
        external_id=state["external_id"],
        org_attribute=state["org_attribute"],
        created_at=now,
    )
    if keyed:
        keys.assign(user)
        insert_later(user)
        link.user = user
        # The link's key is the sequence's at INSERT, read back: lists page by link key,
        # and a key taken ahead could land behind a cached keyset anchor.
        insert_later(link, read_key=True)
    else:
        # ON CONFLICT DO NOTHING instead of a savepoint: a collision on the userName index
        # leaves the transaction usable, and _check_collisions explains it (or takes the
        # user back).
        if not insert(user, ignore_conflicts=True):
            adopted = _check_collisions(provider, state, None)
            if adopted is None:  # a concurrent create took the userName first
                raise ProvisioningError(
                    f"A user with userName {state['username']!r} already exists.",
                    kind="conflict",
                )
            return _take_back(provider, adopted, state, actor=actor)
        link.user = user
        if not insert(link, ignore_conflicts=True):  # the (provider, externalId) index decides
            # The request's transaction rolls back the user inserted above.
            raise ProvisioningError(
                f"externalId {state['external_id']!r} is already used by another user.",
                kind="conflict",
            )
    for role in roles:
        insert_later(User.roles.through(user_id=user.pk, role_id=role.pk))
    _count_link(provider, +1, unchanged)
    changes = [(SyncChange.USER_ADDED, "userName", None, user.username), *_added_values(state)]
    changes.append((SyncChange.ORGANIZATION_CHANGED, "organization", None, organization.label))
    if roles:
        roles_text = ", ".join(sorted(r.name for r in roles))
        changes.append((SyncChange.ROLES_CHANGED, "roles", None, roles_text))
    record.sync_changes(actor=actor, user_id=user.pk, user_label=user.username, changes=changes)
    record.audit(actor=actor, action="user_added", target_label=user.username)
    if not state["active"]:
        identity_services.apply_provider_active(
            user,
            active=False,
            actor=actor,
            delay=provider.deactivation_delay,
            locked=True,  # inserted by this transaction: nobody else can see it yet
            at=now,  # created blocked: never modified since (meta.lastModified = created)
        )
    return link


def _added_values(state: dict) -> list[tuple]:
    """A new user's sync-log rows for the values it was pushed with, beside its "user
    added" row: one per attribute that has one (PRODUCT.md "Sync log": the first value of
    an attribute is a change too, and the log is where an auditor reads what was pushed)."""
    from .scim.users import SCIM_NAMES  # names as the IdP knows them

    rows = [
        (SyncChange.USER_ADDED, SCIM_NAMES[field], None, state[field])
        for field in _ADDED_FIELDS
        if state[field]
    ]
    if state["manager_user"] is not None:  # PRODUCT.md: manager values carry the user id
        rows.append((SyncChange.USER_ADDED, SCIM_NAMES["manager"], None, state["manager_user"].pk))
    return rows


# What a create logs besides userName (its own row) and the organization.
_ADDED_FIELDS = [f for f in (*USER_COLUMNS, *LINK_COLUMNS) if f != "username"]


@transaction.atomic(savepoint=False)
def update_user(link: ProviderUser, state: dict[str, Any], *, actor: Actor) -> ProviderUser:
    """PUT or PATCH /Users/<id>: write only what changed; nothing changed, nothing written.
    ``link`` and ``link.user`` come locked (``select_for_update``) from the caller."""
    provider = link.provider
    state = _validated(provider, state, link)
    if state["username"].lower() != link.user.username.lower():
        _check_collisions(provider, state, link)
    elif state["external_id"] != link.external_id:
        _check_collisions(provider, state, link)
    return _apply(link, state, actor=actor)


def _apply(link: ProviderUser, state: dict, *, actor: Actor, adopting: bool = False):
    """``link.user`` must be locked by the caller (the SCIM views lock link and user together;
    a user taken back is locked in ``_take_back``)."""
    user = link.user
    changed: list[tuple[str, Any, Any]] = []
    user_values: dict[str, Any] = {}
    for field, column in USER_COLUMNS.items():
        old = getattr(user, column)
        if old != state[field]:
            user_values[column] = state[field]
            changed.append((field, old, state[field]))
    if user.manager_id != (state["manager_user"].pk if state["manager_user"] else None):
        # PRODUCT.md "Sync log": manager values carry the user id.
        changed.append(("manager", user.manager_id, getattr(state["manager_user"], "pk", None)))
        user_values["manager"] = state["manager_user"]
    link_values: dict[str, Any] = {}
    for field, column in LINK_COLUMNS.items():
        old = getattr(link, column)
        if old != state[field]:
            link_values[column] = state[field]
            changed.append((field, old, state[field]))
    if changed:
        from .scim.users import SCIM_NAMES  # names as the IdP knows them

        # Only what changed, plus lastModified (a link-only change is a change of the user).
        user_values["updated_at"] = timezone.now()
        if "username" in user_values:
            try:
                with transaction.atomic():  # the case-insensitive unique index decides
                    update_columns(user, **user_values)
            except IntegrityError:
                raise ProvisioningError(
                    f"A user with userName {state['username']!r} already exists.",
                    kind="conflict",
                ) from None
        else:
            # No unique column changes and values are validated: nothing can refuse the row,
            # and nothing in the request reads it back. It goes with the batched tail.
            update_columns_later(user, **user_values)
        if "external_id" in link_values:  # its unique index may refuse it, here and now
            try:
                # _check_collisions looked first, but a concurrent write of the same
                # externalId to another user can commit in between: the index decides.
                with transaction.atomic():
                    update_columns(link, version=link.version + 1, **link_values)
            except IntegrityError:
                raise ProvisioningError(
                    f"externalId {state['external_id']!r} is already used by another user.",
                    kind="conflict",
                ) from None
        else:  # nothing there can refuse the row
            update_columns_later(link, version=link.version + 1, **link_values)
        record.sync_changes(
            actor=actor,
            user_id=user.pk,
            user_label=user.username,
            changes=[
                (SyncChange.ATTRIBUTE_UPDATED, SCIM_NAMES[field], old, new)
                for field, old, new in changed
                # A user taken back logged each value pushed as "user added" already.
                if not (adopting and new not in (None, ""))
            ],
        )
        record.audit(
            actor=actor,
            action="external_attributes_changed",
            target_label=user.username,
            attributes=", ".join(SCIM_NAMES[f] for f, _, _ in changed),
        )
    currently_active = user.status == UserStatus.ACTIVE
    if state["active"] != currently_active or adopting:
        before = (user.status, user.updated_at)
        user = identity_services.apply_provider_active(
            user,
            active=state["active"],
            actor=actor,
            delay=link.provider.deactivation_delay,
            locked=True,
            # Read with the locked user where the views could (provisioning.selectors).
            open_row=link.__dict__.pop("open_deactivation", identity_services.UNREAD),
        )
        if (user.status, user.updated_at) != before and not changed:
            update_columns_later(link, version=link.version + 1)
        link.user = user
    return link


def _release_reports(provider: Provider, manager: User, *, actor: Actor) -> None:
    """DELETE of a manager: the users of this provider it manages lose it, each change
    logged and its version bumped, as the manager leaves its groups. It stayed hidden before,
    and came back when that userName was pushed again: the same person back, or a new one
    given the name, became their manager with no request naming them."""
    from .scim.users import SCIM_NAMES  # names as the IdP knows them

    # Each report's link and user locked in one statement, link first, as every write of a
    # user locks them (selectors.provider_user_by_scim_id): users first deadlocked with a
    # PATCH of a report.
    reports_of = ProviderUser.objects.filter(provider=provider, user__manager=manager)
    reports = list(
        reports_of.order_by("id")
        .select_for_update(no_key=True)
        .values_list("user_id", "user__username")
    )
    if not reports:
        return
    reports_of.update(version=F("version") + 1)
    User.objects.filter(manager=manager, provider_link__provider=provider).update(
        manager=None, updated_at=timezone.now()
    )
    record.sync_change_of_users(
        actor=actor, users=reports, change=SyncChange.ATTRIBUTE_UPDATED,
        attribute=SCIM_NAMES["manager"], old=manager.pk,
    )  # fmt: skip


@transaction.atomic(savepoint=False)
def remove_user(link: ProviderUser, *, actor: Actor) -> None:
    """DELETE /Users/<id>: block now, schedule the deactivation, and take the user out of
    the provider's view (GET → 404). The person stays, for legal hold and audit."""
    if connection.vendor == "postgresql":
        # The link FOR UPDATE before reports and memberships are read: a write naming this
        # user (as a manager, a new member) holds the link FOR KEY SHARE (hold_linked), so
        # it commits first and is undone below, or finds the link gone.
        list(ProviderUser.objects.filter(pk=link.pk).select_for_update().values_list("pk"))
    user = User.objects.select_for_update(no_key=True).get(pk=link.user_id)
    if user.status != UserStatus.DEACTIVATED:
        identity_services.deprovision(
            user, actor=actor, delay=link.provider.deactivation_delay, locked=True
        )
    # Reports before groups: a report that is in one of this user's groups, deleted at the
    # same time, locks itself, then that group.
    _release_reports(link.provider, user, actor=actor)
    # Out of the provider's view means out of its groups too: a user pushed again later
    # must not silently be a member again.
    memberships = GroupMembership.objects.filter(user=user, group__provider=link.provider)
    found = list(memberships.values_list("group_id", "group__display_name").order_by("id"))
    record.sync_changes(
        actor=actor, user_id=user.pk, user_label=user.username,
        changes=[(SyncChange.GROUP_MEMBERSHIP_CHANGED, "groups", name, None) for _, name in found],
    )  # fmt: skip
    if found:
        # The groups changed: bump their versions so a cached ETag (If-None-Match) goes
        # stale. Locked first in id order: two removals of users sharing groups updated
        # them in the order the plan met them, which rows updated meanwhile reshuffle, and
        # deadlocked.
        group_ids = sorted({group_id for group_id, _ in found})
        locked = ScimGroup.objects.filter(id__in=group_ids).order_by("id")
        list(locked.select_for_update(no_key=True).values_list("id", flat=True))
        ScimGroup.objects.filter(id__in=group_ids).update(
            version=F("version") + 1, updated_at=timezone.now()
        )
    memberships.delete()
    link.delete()
    RemovedProviderUser.objects.update_or_create(
        user=user, defaults={"provider": link.provider, "removed_at": timezone.now()}
    )
    _count_link(link.provider, -1)
    record.sync_change(
        actor=actor, user_id=user.pk, user_label=user.username,
        change=SyncChange.USER_REMOVED, attribute="provider", old=link.provider.name,
    )  # fmt: skip
    record.audit(actor=actor, action="user_removed", target_label=user.username)
