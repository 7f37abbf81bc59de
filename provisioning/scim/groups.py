"""SCIM Group resources: parse what an IdP sends into a staged state, render a group back.

Like ``users.UserAdapter``, ``GroupAdapter`` only *stages*: ``state`` is the group's whole
desired state (displayName, externalId, the SCIM ids of its members) and ``referenced`` every
member id the request named, so ``provisioning.group_sync`` can refuse the whole request when
one of them is not a user this provider provisioned (a member must never drift silently).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from provisioning.group_sync import MemberChanges
from provisioning.models import ScimGroup

from . import errors, filters, patch
from .base import fold_keys, parse_uuid
from .schema import CORE_GROUP
from .users import coerce_string, parse_value_filter

_CORE_PREFIX = CORE_GROUP.lower() + ":"
# Keys a resource body may carry that are not group attributes Gatehouse writes.
_READ_ONLY = {"schemas", "meta"}


def canonical_id(value: str) -> str:
    """A member id in canonical UUID form, so ``ABC…`` and ``abc…`` name the same user; an id
    that is no UUID stays as sent (the service rejects it, naming it)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def member_ids(value: Any, name: str = "members") -> list[str]:
    """``[{"value": "<id>", "display": …}, …]`` (or one such object) → the ids, in order."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise errors.InvalidValue(f"{name} must be a list of objects with a value.")
    ids = []
    for item in value:
        if isinstance(item, dict):  # sub-attribute names are case-insensitive: {"Value": …}
            item = fold_keys(item)
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise errors.InvalidValue(f"Each of {name} needs a string value (the user's id).")
        ids.append(canonical_id(item["value"].strip()))
    return ids


def _attribute(key: str) -> str:
    """A lower-cased top-level attribute name; the core Group schema URI may prefix it."""
    lowered = key.strip().lower()
    return lowered.removeprefix(_CORE_PREFIX)


class GroupAdapter:
    """Stages a group's SCIM state: ``display_name``, ``external_id``, ``members``."""

    def __init__(self, state: dict[str, Any], *, scim_id: str | None = None):
        """``state["members"]`` is the whole desired member list, or None for a PATCH: then
        adds and removes are only noted (``staged``), so that a PATCH adding one member
        to a group of 100,000 reads one membership, not 100,000. A replace of the members (or
        a remove of them all) makes the list whole again."""
        self.state = dict(state)
        if state["members"] is not None:
            self.state["members"] = list(state["members"])
        self.scim_id = scim_id
        self.referenced: list[str] = []  # ids added or replaced in: each must resolve
        self._added: dict[str, None] = {}  # insertion-ordered sets
        self._removed: dict[str, None] = {}

    @classmethod
    def for_patch(cls, group: ScimGroup) -> GroupAdapter:
        return cls(
            {"display_name": group.display_name, "external_id": group.external_id, "members": None},
            scim_id=str(group.scim_id),
        )

    @property
    def staged(self) -> dict[str, Any]:
        """The state for ``group_sync``: members are the whole list, or a PATCH's
        ``MemberChanges`` when it never replaced them all."""
        if self.state["members"] is not None:
            return self.state
        changes = MemberChanges(added=list(self._added), removed=list(self._removed))
        return {**self.state, "members": changes}

    # --- full resources (POST, PUT) ---------------------------------------------------------
    @classmethod
    def from_resource(cls, body: Any, *, scim_id: str | None = None) -> GroupAdapter:
        """A fresh state from a whole resource: PUT replaces displayName, externalId and
        members (left out = cleared, RFC 7644 §3.5.1)."""
        if not isinstance(body, dict):
            raise errors.InvalidSyntax("The request body must be a JSON object.")
        adapter = cls({"display_name": "", "external_id": "", "members": []}, scim_id=scim_id)
        for key, value in body.items():
            attribute = _attribute(key)
            if attribute == "displayname":
                adapter.set_display_name(value)
            elif attribute == "externalid":
                adapter.state["external_id"] = coerce_string(value, "externalId")
            elif attribute == "members":
                adapter.replace_members([] if value is None else member_ids(value))
            # RFC 7644 §3.3: other attributes (id, meta, schemas, unknown ones) are ignored.
        if not adapter.state["display_name"]:
            raise errors.InvalidValue("displayName is required.")
        return adapter

    # --- staging ----------------------------------------------------------------------------
    def set_display_name(self, value: Any) -> None:
        # As sent, outer spaces included: Entra looks the group up by the name it created
        # it with (displayName eq "…"), and a trimmed name would not be found.
        name = coerce_string(value, "displayName", strip=False)
        if not name.strip():
            raise errors.InvalidValue("displayName is required and cannot be empty.")
        self.state["display_name"] = name

    def add_members(self, ids: list[str]) -> None:
        self.referenced.extend(ids)
        if self.state["members"] is None:
            for member in ids:
                self._removed.pop(member, None)
                self._added[member] = None
            return
        present = set(self.state["members"])
        for member in ids:
            if member not in present:
                self.state["members"].append(member)
                present.add(member)

    def remove_members(self, ids: list[str]) -> None:
        # Not referenced: removing a user id that is no member (a user the provider since
        # DELETEd, whose id Entra resends from its cache, or one it never pushed) is a no-op,
        # as is removing an absent member, and the request's other removals still happen.
        # Failing the batch would leave those users in the group. An id that cannot be a
        # user's at all (no UUID: a userName, an externalId) is a client mistake, though.
        malformed = [member for member in ids if parse_uuid(member) is None]
        if malformed:
            raise errors.InvalidValue(
                f"{malformed[0]!r} is not a user id: members are removed by the id the server "
                "gave the user. Nothing was changed."
            )
        if self.state["members"] is None:
            for member in ids:
                self._added.pop(member, None)
                self._removed[member] = None
            return
        gone = set(ids)
        self.state["members"] = [m for m in self.state["members"] if m not in gone]

    def remove_all_members(self) -> None:
        self.replace_members([])

    def replace_members(self, ids: list[str]) -> None:
        # The whole list from here on: earlier adds and removes of this request no longer
        # matter, and the service diffs it against every current member.
        self.referenced.extend(ids)
        self.state["members"] = list(dict.fromkeys(ids))
        self._added.clear()
        self._removed.clear()

    # --- PATCH ------------------------------------------------------------------------------
    def apply_patch(self, body: Any) -> None:
        for op, path, value in patch.operations(body):
            if path is None:
                self._apply_pathless(op, value)
            else:
                self._apply_path_op(op, path, value)

    def _apply_pathless(self, op: str, value: dict) -> None:
        # Okta: {"op":"replace","value":{"id":"<group id>","displayName":"New"}}
        for key, inner in value.items():
            attribute = _attribute(key)
            if attribute == "id":
                # Okta resends the group's own id; any other id is an attempt to change it.
                if self.scim_id is None or canonical_id(str(inner)) != self.scim_id:
                    raise errors.Mutability("id is read-only and cannot be changed.")
                continue
            if attribute in _READ_ONLY:
                continue
            self._apply_path_op(op, key, inner)

    def _apply_path_op(self, op: str, path: str, value: Any) -> None:
        attribute, member_filter = _parse_group_path(path)
        if attribute == "displayname":
            if op == "remove":
                raise errors.InvalidValue("displayName is required and cannot be removed.")
            self.set_display_name(value)
        elif attribute == "externalid":
            self.state["external_id"] = "" if op == "remove" else coerce_string(value, "externalId")
        elif member_filter is not None:
            # Okta: {"op":"remove","path":"members[value eq \"<id>\"]"}
            if op != "remove":
                raise errors.InvalidPath(
                    f"Only remove is supported on a filtered members path, not {op!r}."
                )
            self.remove_members([canonical_id(member) for member in member_filter])
        elif op == "remove" and value is None:
            self.remove_all_members()  # RFC 7644 §3.5.2.2
        elif op == "remove":
            # Entra: {"op":"Remove","path":"members","value":[{"value":"<id>"}]}
            self.remove_members(member_ids(value))
        elif op == "add":
            ids = member_ids(value)
            if not ids:
                raise errors.InvalidValue("An add to members needs at least one member.")
            self.add_members(ids)
        else:
            self.replace_members([] if value is None else member_ids(value))


_OR = re.compile(r"\s+or\s+", re.IGNORECASE)


def _parse_group_path(path: str) -> tuple[str, list[str] | None]:
    """``(attribute, member ids)`` of a group PATCH path: ``displayName``, ``externalId``,
    ``members``, or ``members[value eq "<id>"]``, several ids joined by ``or`` (RFC 7644
    §3.5.2 allows any value filter; ``or`` of ids is the one that selects members). Anything
    else is ``invalidPath``."""
    text = path.strip()
    member_filter = None
    if text.endswith("]") and "[" in text:
        text, _, inner = text[:-1].partition("[")
        if _attribute(text) != "members":
            raise errors.InvalidPath(f"Unsupported path {path!r}.")
        member_filter = _named_members(inner, path)
    attribute = _attribute(text)
    if attribute in ("id", "meta") or attribute.startswith("meta."):
        # RFC 7644 §3.5.2: as for users, a path to a read-only attribute is a mutability error.
        raise errors.Mutability(f"{attribute} is read-only and cannot be changed.")
    if attribute not in ("displayname", "externalid", "members"):
        raise errors.InvalidPath(f"Unknown attribute path {path!r}.")
    return attribute, member_filter


def _named_members(inner: str, path: str) -> list[str]:
    """The member ids a path's value filter names. What Okta sends, ``value eq "<id>"``
    (several joined by ``or``), is read directly; any other spelling RFC 7644 §3.5.2 allows
    (``value eq"<id>"``, parentheses, ``type eq "User" and value eq …``) through the filter
    parser. A filter that selects members by anything but their ids is refused."""
    members = []
    # An id is a UUID: no quoted value holds " or ", so splitting there is safe.
    for term in _OR.split(inner):
        try:
            attribute, member = parse_value_filter(term, path)
        except errors.InvalidPath:
            break
        if attribute != "value":
            break
        members.append(member)
    else:
        return members
    try:
        named = filters.ValueFilter(inner).named_values()
    except errors.InvalidFilter as exc:
        raise errors.InvalidPath(f"{exc.detail} (path {path!r})") from None
    if named is None:
        raise errors.InvalidFilter(
            f"Members can only be selected by value (the user's id), not in {path!r}."
        )
    return named


# --- rendering ------------------------------------------------------------------------------


def etag(group: ScimGroup) -> str:
    return f'W/"{group.version}"'


def member_resource(scim_id: str, base_url: str) -> dict:
    """A member as RFC 7643 §4.2 has it, from the user's SCIM id.

    No "display": it is readOnly and optional, and what a client PATCHed into members
    ({"value": id}) must read back the same (scim2-tester checks the round trip)."""
    return {"value": scim_id, "$ref": f"{base_url}/Users/{scim_id}", "type": "User"}


def to_resource(group: ScimGroup, base_url: str, members: list[dict] | None) -> dict:
    """The SCIM representation of a group. ``members`` None leaves them out (not asked
    for); an empty list is left out too (RFC 7643 §2.5: unassigned and null are equivalent)."""
    scim_id = str(group.scim_id)
    resource: dict[str, Any] = {"schemas": [CORE_GROUP], "id": scim_id}
    if group.external_id:
        resource["externalId"] = group.external_id
    resource["displayName"] = group.display_name
    if members:
        resource["members"] = members
    resource["meta"] = {
        "resourceType": "Group",
        "created": group.created_at.isoformat(),
        "lastModified": group.updated_at.isoformat(),
        "location": f"{base_url}/Groups/{scim_id}",
        "version": etag(group),
    }
    return resource
