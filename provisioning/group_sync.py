"""Write what a provider says about a group: create, update, remove.

Called by the SCIM layer inside the request's transaction with a fully staged state
(provisioning/scim/groups.py), following provisioning/user_sync.py: validate everything
first (every member id the request named must be a user this provider provisioned, or
nothing is written), then write the group, one sync-log row per change and one audit row.

Okta pushes groups with thousands of members, so membership is resolved, written and logged
in bulk: the member ids in one query, the new memberships in one ``bulk_create``, the
removed ones in one ``DELETE``, the sync-log rows in one ``bulk_create``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, NamedTuple

from django.db import IntegrityError, transaction
from django.utils import timezone

from synclog import record
from synclog.models import SyncChange, SyncLogEntry
from synclog.record import Actor

from .models import GroupMembership, Provider, ScimGroup
from .selectors import hold_linked, provider_users
from .user_sync import ProvisioningError

# Ids per ``IN (…)`` query: a whole push up to this size resolves in one query, and the
# parameter count stays far below SQLite's and PostgreSQL's limits.
_CHUNK = 10_000
_SHOWN_IDS = 5  # unknown member ids named in an error message


class Member(NamedTuple):
    user_id: int
    username: str


class MemberChanges(NamedTuple):
    """A PATCH's adds and removes of members, as SCIM ids in request order, when it never
    replaced the whole list: the service then reads only the memberships they name."""

    added: list[str]
    removed: list[str]


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def current_members(group: ScimGroup) -> dict[str, Member]:
    """The group's members as its provider sees them, by SCIM id, in membership order.

    Only users the group's provider still provisions count: a user DELETEd through /Users
    leaves the provider's view, and so the group's members, at once.
    """
    rows = (
        GroupMembership.objects.filter(group=group, user__provider_link__provider=group.provider_id)
        .order_by("id")
        .values_list("user__provider_link__scim_id", "user_id", "user__username")
    )
    return {str(scim_id): Member(user_id, username) for scim_id, user_id, username in rows}


def _uuid_keys(ids: Iterable[str]) -> tuple[dict[str, uuid.UUID], list[str]]:
    """The ids that are UUIDs, keyed by the id as sent, and the ones that are not."""
    keys, malformed = {}, []
    for member in dict.fromkeys(ids):
        try:
            keys[member] = uuid.UUID(member)
        except ValueError:
            malformed.append(member)
    return keys, malformed


def _members_by_id(queryset, link: str, keys: dict[str, uuid.UUID]) -> dict[str, Member]:
    """``Member``s of ``queryset`` whose ``link`` (path to the SCIM id) is one of ``keys``,
    by SCIM id, one chunk of ids per query."""
    found: dict[str, Member] = {}
    for chunk in _chunks(list(keys.values())):
        rows = queryset.filter(**{f"{link}__in": chunk}).values_list(
            link, "user_id", "user__username"
        )
        found.update({str(s): Member(u, name) for s, u, name in rows})
    return found


def members_among(group: ScimGroup, ids: Iterable[str]) -> dict[str, Member]:
    """Which of these SCIM ids are members of the group (as ``current_members`` sees them):
    one indexed lookup per id, whatever the group's size. Ids that are no UUID are no member."""
    keys, _ = _uuid_keys(ids)
    memberships = GroupMembership.objects.filter(
        group=group, user__provider_link__provider=group.provider_id
    )
    return _members_by_id(memberships, "user__provider_link__scim_id", keys)


def _resolve(provider: Provider, ids: Iterable[str]) -> dict[str, Member]:
    """The provider's users these SCIM ids name; any other id (malformed, unknown, another
    provider's user, a local user) refuses the whole request, naming the ids."""
    keys, unknown = _uuid_keys(ids)
    found = _members_by_id(provider_users(provider), "scim_id", keys)
    held = hold_linked(provider, [member.user_id for member in found.values()])
    found = {scim_id: member for scim_id, member in found.items() if member.user_id in held}
    unknown += [member for member in keys if member not in found]
    if unknown:
        shown = ", ".join(repr(m) for m in unknown[:_SHOWN_IDS])
        more = f" and {len(unknown) - _SHOWN_IDS} more" if len(unknown) > _SHOWN_IDS else ""
        noun = "member" if len(unknown) == 1 else "members"
        raise ProvisioningError(
            f"{noun} {shown}{more} {'is' if len(unknown) == 1 else 'are'} not a user this "
            "provider provisioned; push the users first. Nothing was changed."
        )
    return found


def _validated(state: dict[str, Any]) -> dict[str, Any]:
    state = dict(state)
    state["external_id"] = (state.get("external_id") or "").strip()
    state["display_name"] = state.get("display_name") or ""  # as sent (scim/groups.py)
    for field, name in (("display_name", "displayName"), ("external_id", "externalId")):
        limit = ScimGroup._meta.get_field(field).max_length
        if len(state[field]) > limit:
            raise ProvisioningError(f"{name} is longer than {limit} characters.")
    if not state["display_name"].strip():
        raise ProvisioningError("displayName is required.")
    return state


def _saved_unless_taken(group: ScimGroup, **save) -> None:
    """Save ``group``, or a 409 when another of its provider's groups has its externalId
    (the ``scimgroup_unique_external_id`` constraint decides, races included)."""
    try:
        with transaction.atomic():
            group.save(**save)
    except IntegrityError:
        raise ProvisioningError(
            f"externalId {group.external_id!r} is already used by another group.",
            kind="conflict",
        ) from None


def _membership_rows(
    group_name: str, members: list[Member], *, added: bool, actor: Actor, now
) -> list[SyncLogEntry]:
    # Built here rather than through synclog.record.sync_change (one INSERT per row) so a push
    # of thousands of members is one bulk_create; the fields are exactly the ones
    # record.sync_change sets, the provider taken from the actor as it does.
    return [
        SyncLogEntry(
            created_at=now,
            provider_id=actor.provider_id,
            provider_label=actor.provider_label,
            user_id=member.user_id,
            user_label=member.username,
            change_type=SyncChange.GROUP_MEMBERSHIP_CHANGED,
            attribute="groups",
            old_value="" if added else group_name,
            new_value=group_name if added else "",
            request_id=actor.request_id,
        )
        for member in members
    ]


def _group_row(group_name: str, change: SyncChange, *, actor: Actor, now, **values):
    """A group-level row. Group rows impact no user: the label column names the group."""
    return SyncLogEntry(
        created_at=now,
        provider_id=actor.provider_id,
        provider_label=actor.provider_label,
        user_id=None,
        user_label=group_name,
        change_type=change,
        request_id=actor.request_id,
        **values,
    )


def _add_memberships(group: ScimGroup, members: list[Member], now) -> None:
    GroupMembership.objects.bulk_create(
        [GroupMembership(group=group, user_id=m.user_id, created_at=now) for m in members]
    )


@transaction.atomic(savepoint=False)
def create_group(
    provider: Provider, state: dict[str, Any], *, referenced: Iterable[str] = (), actor: Actor
) -> ScimGroup:
    """POST /Groups: the group and the members it names (all of which must resolve)."""
    state = _validated(state)
    resolved = _resolve(provider, [*state["members"], *referenced])
    members = [resolved[m] for m in state["members"]]
    now = timezone.now()
    group = ScimGroup(
        provider=provider,
        display_name=state["display_name"],
        external_id=state["external_id"],
        created_at=now,
        updated_at=now,
    )
    _saved_unless_taken(group)
    _add_memberships(group, members, now)
    # Its displayName and externalId: a later change's old value appears in the log first.
    pushed = (("displayName", group.display_name), ("externalId", group.external_id))
    rows = [
        _group_row(group.display_name, SyncChange.GROUP_ADDED, actor=actor, now=now,
                   attribute=attribute, new_value=value)
        for attribute, value in pushed
        if value
    ]  # fmt: skip
    rows += _membership_rows(group.display_name, members, added=True, actor=actor, now=now)
    SyncLogEntry.objects.bulk_create(rows)
    record.audit(
        actor=actor, action="group_added", target_label=group.display_name, members=len(members)
    )
    return group


@transaction.atomic(savepoint=False)
def update_group(
    group: ScimGroup, state: dict[str, Any], *, referenced: Iterable[str] = (), actor: Actor
) -> ScimGroup:
    """PUT or PATCH /Groups/<id>: ``state`` is the whole desired group, its ``members`` the
    whole list or a PATCH's ``MemberChanges``. Writes only what changed: a member added twice
    or removed while absent writes nothing.

    The caller locks the group (``select_for_update``) before staging from it.
    """
    state = _validated(state)
    referenced = list(referenced)
    changes = state["members"]
    if isinstance(changes, MemberChanges):
        current = members_among(group, [*referenced, *changes.added, *changes.removed])
        wanted = changes.added
        removed = [current[m] for m in dict.fromkeys(changes.removed) if m in current]
    else:
        current = current_members(group)
        wanted = list(dict.fromkeys(changes))
        wanted_set = set(wanted)
        removed = [member for scim_id, member in current.items() if scim_id not in wanted_set]
    # Current members are known good; everything else the request added must resolve.
    resolved = _resolve(group.provider, [m for m in [*wanted, *referenced] if m not in current])
    added = [resolved[m] for m in wanted if m not in current]
    old_name = group.display_name
    changed_attributes = [
        (name, getattr(group, field), state[field])
        for field, name in (("display_name", "displayName"), ("external_id", "externalId"))
        if getattr(group, field) != state[field]
    ]
    if not (added or removed or changed_attributes):
        return group  # STYLE.md: no change, no row
    now = timezone.now()
    rows = []
    for name, old, new in changed_attributes:
        rows.append(
            _group_row(
                old_name,
                SyncChange.GROUP_UPDATED,
                actor=actor,
                now=now,
                attribute=name,
                old_value=old,
                new_value=new,
            )
        )
    group.display_name = state["display_name"]
    group.external_id = state["external_id"]
    group.version += 1
    group.updated_at = now
    fields = ["display_name", "external_id", "version", "updated_at"]
    if any(name == "externalId" for name, _, _ in changed_attributes):
        _saved_unless_taken(group, update_fields=fields)
    else:
        group.save(update_fields=fields)
    for chunk in _chunks([m.user_id for m in removed]):
        GroupMembership.objects.filter(group=group, user_id__in=chunk).delete()
    _add_memberships(group, added, now)
    # Membership rows carry the group's name after this request (a rename in the same
    # request: the name the group now has).
    rows += _membership_rows(group.display_name, added, added=True, actor=actor, now=now)
    rows += _membership_rows(group.display_name, removed, added=False, actor=actor, now=now)
    SyncLogEntry.objects.bulk_create(rows)
    record.audit(
        actor=actor,
        action="group_updated",
        target_label=group.display_name,
        attributes=", ".join(name for name, _, _ in changed_attributes),
        members_added=len(added),
        members_removed=len(removed),
    )
    return group


@transaction.atomic(savepoint=False)
def remove_group(group: ScimGroup, *, actor: Actor) -> None:
    """DELETE /Groups/<id>: the group and its memberships go; each member's removal is
    logged, as is the group's."""
    removed = list(current_members(group).values())
    now = timezone.now()
    name = group.display_name
    group.delete()
    SyncLogEntry.objects.bulk_create(
        [
            *_membership_rows(name, removed, added=False, actor=actor, now=now),
            _group_row(
                name,
                SyncChange.GROUP_REMOVED,
                actor=actor,
                now=now,
                attribute="displayName",
                old_value=name,
            ),
        ]
    )
    record.audit(actor=actor, action="group_removed", target_label=name, members=len(removed))
