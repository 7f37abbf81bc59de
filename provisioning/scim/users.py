"""SCIM User resources: parse what an IdP sends into a staged state, render a user back.

The adapter extends django-scim2's ``SCIMMixin`` (its PATCH dispatch: op names lowered, so
Entra's ``"Replace"`` works; path-less ops split into one path per key) and only *stages*
changes in ``self.state``; ``provisioning.user_sync`` validates and writes them.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

from django_scim.adapters import SCIMMixin
from scim2_filter_parser.attr_paths import AttrPath
from scim2_filter_parser.parser import SCIMParserError

from provisioning.models import ProviderUser

from . import errors, filters, patch
from .base import fold_keys, parse_uuid
from .schema import (
    CORE_USER,
    ENTERPRISE_USER,
    GATEHOUSE_USER,
    IGNORED,
    ORG_ATTRIBUTE,
    USER_FIELDS,
    field_for_path,
)
from .user_rows import etag_of, org_namespace, parse_groups

STRING_FIELDS = set(USER_FIELDS) - {"active", "manager"}
EMPTY_STATE: dict[str, Any] = {f: "" for f in USER_FIELDS} | {"active": True, "manager": None}

# SCIM names of each field, for error messages and the sync log.
SCIM_NAMES = {
    "username": "userName",
    "external_id": "externalId",
    "active": "active",
    "display_name": "displayName",
    "given_name": "name.givenName",
    "family_name": "name.familyName",
    "title": "title",
    "user_type": "userType",
    "email": "emails.value",
    "locality": "addresses.locality",
    "region": "addresses.region",
    "country": "addresses.country",
    "employee_number": "employeeNumber",
    "department": "department",
    "division": "division",
    "manager": "manager",
    "org_attribute": ORG_ATTRIBUTE,
}

_SCHEMA_URNS = {CORE_USER.lower(), ENTERPRISE_USER.lower(), GATEHOUSE_USER.lower()}
# The fields a whole extension object holds (a PATCH may replace or remove one at once).
# The enterprise extension as OneLogin's templates name it (SCIM 1.1's, and its own "2.0"
# spelling of it): the same department, division and employeeNumber.
_ENTERPRISE_ALIASES = {
    "urn:scim:schemas:extension:enterprise:1.0": ENTERPRISE_USER,
    "urn:scim:schemas:extension:enterprise:2.0": ENTERPRISE_USER,
}
_EXTENSION_FIELDS = {
    ENTERPRISE_USER.lower(): ("employee_number", "department", "division", "manager"),
    GATEHOUSE_USER.lower(): ("org_attribute",),
}
# Core attributes whose whole value is a complex or multi-valued object.
_COMPLEX = ("name", "emails", "addresses")
# RFC 7643 §4.1: the sub-attributes of the core complex attributes. A PATCH path naming any
# other (``name.middleInitial``) is an unknown path, not a silent 200.
_MULTI_VALUED_SUBS = {"value", "display", "type", "primary"}
_CORE_SUB_ATTRIBUTES = {
    "name": {
        "formatted", "familyname", "givenname", "middlename", "honorificprefix",
        "honorificsuffix",
    },
    "addresses": {
        "formatted", "streetaddress", "locality", "region", "postalcode", "country", "type",
        "primary",
    },
    "emails": _MULTI_VALUED_SUBS,
    "phonenumbers": _MULTI_VALUED_SUBS,
    "ims": _MULTI_VALUED_SUBS,
    "photos": _MULTI_VALUED_SUBS,
    "entitlements": _MULTI_VALUED_SUBS,
    "roles": _MULTI_VALUED_SUBS,
    "x509certificates": _MULTI_VALUED_SUBS,
    "groups": {"value", "$ref", "display", "type"},
}  # fmt: skip
_PREFERRED_TYPES = {"work"}
# The state columns of the one email and the one address kept, by sub-attribute.
_KEPT_COLUMNS = {
    "emails": {"value": "email"},
    "addresses": {"locality": "locality", "region": "region", "country": "country"},
}
_NOT_KEPT = "(not kept)"  # a value path selecting values of an attribute Gatehouse ignores


def coerce_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    # Entra: sends "active": "False" and "True" as strings.
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise errors.InvalidValue(f"{name} must be a boolean, got {value!r}.")


def coerce_string(value: Any, name: str, *, strip: bool = True) -> str:
    """``value`` as text, outer white space taken off unless ``strip`` is False."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise errors.InvalidValue(f"{name} must be a string, got {type(value).__name__}.")
    if isinstance(value, float) and not math.isfinite(value):
        # 1e999 parses as infinity: it would be stored as the text "inf".
        raise errors.InvalidValue(f"{name} must be a string, got a number out of range.")
    # A number is taken as its text: some IdPs send employeeNumber as one.
    return str(value).strip() if strip else str(value)


def _is_primary(item: dict) -> bool:
    return item.get("primary") in (True, "true", "True")  # Entra writes "True"


def _pick(items: Any, name: str) -> dict | None:
    """The entry of a multi-valued attribute Gatehouse keeps: primary, else work, else one
    with no type, else the first."""
    if items is None:
        return None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise errors.InvalidValue(f"{name} must be a list of objects.")
    items = [fold_keys(item) for item in items]  # "Value", "Locality": RFC 7643 §2.1
    for item in items:
        if _is_primary(item):
            return item
    for item in items:
        if str(item.get("type", "")).lower() in _PREFERRED_TYPES:
            return item
    for item in items:
        if not item.get("type"):
            return item
    return items[0] if items else None


class UserAdapter(SCIMMixin):
    """Stages a user's SCIM state. ``state`` maps the fields of ``schema.USER_FIELDS``."""

    resource_type = "User"

    def __init__(self, state: dict[str, Any] | None = None, *, scim_id: str | None = None):
        super().__init__(obj=None)
        self.state = dict(state or EMPTY_STATE)
        self.scim_id = scim_id  # of the user a PATCH changes
        # The admin's own extension URN the organization attribute came in, if it did
        # (Provider.org_attribute_schema).
        self.org_attribute_schema: str | None = None

    # --- setting one attribute ------------------------------------------------------------
    def set_field(self, field: str, value: Any) -> None:
        name = SCIM_NAMES[field]
        if field == "active":
            self.state["active"] = coerce_bool(value, name)
        elif field == "manager":
            if isinstance(value, dict):
                value = _manager_reference(fold_keys(value))
            self.state["manager"] = coerce_string(value, name) or None
        else:
            self.state[field] = coerce_string(value, name)

    def clear_field(self, field: str) -> None:
        self.state[field] = EMPTY_STATE[field]

    def set_path(
        self, attribute: str, sub: str | None, uri: str | None, value: Any, *, adding=False
    ) -> None:
        """Set one attribute path from a resource body or a PATCH op (without a filter).
        ``adding``: a PATCH add, which changes only the sub-attributes its value names."""
        attr_l = attribute.lower()
        if uri is None and attr_l in _SCHEMA_URNS:
            self.set_extension(attribute, value)
            return
        core = uri is None or uri.lower() == CORE_USER.lower()
        if sub is None and value is None and attr_l in _COMPLEX and core:
            # A null name, emails or addresses is unassigned (RFC 7643 §2.5): what Gatehouse
            # keeps of it is cleared, as a remove does (it was a 200 that changed nothing).
            value = [] if attr_l != "name" else {k: "" for k in ("givenName", "familyName")}
        if sub is None and value is not None:
            expanded = self._expand_complex(attr_l, uri, value, adding=adding)
            if expanded is not None:
                for (a, s, u), v in expanded:
                    self.set_path(a, s, u, v)
                return
        field = field_for_path(attribute, sub, uri)
        if field is None:
            raise errors.InvalidPath(f"Unknown attribute path {_dotted(attribute, sub, uri)!r}.")
        if field == "org_attribute" and uri is not None:
            # An admin's own namespace, or Gatehouse's ("") again.
            self.org_attribute_schema = uri if _other_extension(uri) else ""
        if field != IGNORED:
            self.set_field(field, value)

    def set_extension(self, urn: str, value: Any) -> None:
        """Set every attribute of a whole schema object (``{"urn:…:User": {...}}``). Of an
        extension Gatehouse does not know, only the organization attribute is kept: Okta and
        Entra let an admin name the custom namespace (schema.py)."""
        urn = _ENTERPRISE_ALIASES.get(urn.lower(), urn)
        known = urn.lower() in _SCHEMA_URNS
        if value is None and urn.lower() in _EXTENSION_FIELDS:
            # A null extension is unassigned (RFC 7643 §2.5): clear what Gatehouse keeps of it.
            for field in _EXTENSION_FIELDS[urn.lower()]:
                self.clear_field(field)
            return
        if not isinstance(value, dict):
            raise errors.InvalidValue(f"{urn} must be an object.")
        for key, inner in value.items():
            if key.lower() == "schemas":
                continue  # some clients repeat the schemas list inside an extension object
            if not known and field_for_path(key, None, urn) is None:
                continue  # another attribute of a custom namespace: not kept here
            self.set_path(key, None, urn, inner)

    def _expand_complex(self, attr_l: str, uri: str | None, value: Any, *, adding=False):
        uri_l = uri.lower() if uri else None
        if uri_l in (None, CORE_USER.lower()):
            if attr_l == "name":
                if not isinstance(value, dict):
                    raise errors.InvalidValue("name must be an object.")
                return [(("name", k, None), v) for k, v in value.items()]
            if attr_l in ("emails", "addresses"):
                item = _pick(value, attr_l)
                keep = ("value",) if attr_l == "emails" else ("locality", "region", "country")
                if item is None:  # an empty list: none kept (the whole address, not a part)
                    return [((attr_l, k, None), "") for k in keep]
                if adding:
                    # RFC 7644 §3.5.2.1: an add brings values; one without a locality (only a
                    # postalCode, not kept) leaves the kept locality as it is. A POST, a PUT
                    # or a replace states the whole entry, and what it leaves out is cleared.
                    keep = tuple(k for k in keep if k in item)
                return [((attr_l, k, None), item.get(k)) for k in keep]
        return None

    # --- full resources (POST, PUT) ---------------------------------------------------------
    @classmethod
    def from_resource(cls, body: Any, *, current: dict | None = None) -> UserAdapter:
        """A fresh state from a whole resource. PUT replaces everything it names; ``active``
        left out keeps its current value (an omission must not unblock anyone)."""
        if not isinstance(body, dict):
            raise errors.InvalidSyntax("The request body must be a JSON object.")
        adapter = cls()
        if current is not None:
            adapter.state["active"] = current["active"]
        for key, value in body.items():
            if not isinstance(key, str) or value is None:
                # null is unassigned (RFC 7643 §2.5), as if left out: a fresh state has
                # nothing there, and active keeps its current value.
                continue
            attribute, sub, uri = _split_key(key)
            if field_for_path(attribute, sub, uri) is not None or attribute.lower() in (
                _SCHEMA_URNS
            ):
                adapter.set_path(attribute, sub, uri, value)
            elif _is_custom_extension(key, value):
                # Okta: custom attributes come in a block named by the admin's namespace,
                # {"urn:ietf:params:scim:schemas:extension:acme:2.0:User": {"c42OrgName": ...}}
                adapter.set_extension(key, value)
            # else: PUT/POST: unknown top-level attributes are ignored (RFC 7644 §3.3)
        if not adapter.state["username"]:
            raise errors.InvalidValue("userName is required.")
        return adapter

    # --- PATCH ------------------------------------------------------------------------------
    def apply_patch(self, body: Any) -> None:
        for op, path, value in patch.operations(body):
            if path is not None:
                self._apply_path_op(op, path, value)
                continue
            for key, inner in value.items():
                if not isinstance(key, str):
                    raise errors.InvalidPath("Attribute names must be strings.")
                if _is_custom_extension(key, inner):
                    self.set_extension(key, inner)
                elif key.strip().lower() in ("meta", "groups"):
                    # A value that is a whole resource repeats them: the server's to set,
                    # left as they are (as in a PUT). An explicit path to them is refused.
                    continue
                else:
                    self._apply_path_op(op, key, inner)

    def _check_mutable(self, op: str, attribute: str, uri: str | None, value: Any) -> None:
        """RFC 7644 §3.5.2: an operation on a read-only attribute (id, meta, groups, which
        change through /Groups) is an error, not a 200 that changed nothing. A client
        resending the user's own id, unchanged, is let through."""
        read_only = _read_only_attribute(attribute, uri)
        if read_only is None:
            return
        if read_only == "id" and op != "remove" and self.scim_id is not None:
            if isinstance(value, str) and parse_uuid(value.strip()) == uuid.UUID(self.scim_id):
                return
        where = " (group memberships change through /Groups)" if read_only == "groups" else ""
        raise errors.Mutability(f"{read_only} is read-only and cannot be changed{where}.")

    def _apply_path_op(self, op: str, path: str, value: Any) -> None:
        path = _with_enterprise_urn(path)
        extension = path.strip().lower()
        if extension in _EXTENSION_FIELDS:
            # RFC 7644 §3.5.2: a path (or a key of a path-less value) may name a whole
            # extension, {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {...}}
            if op == "remove":
                for field in _EXTENSION_FIELDS[extension]:
                    self.clear_field(field)
            else:
                self.set_extension(path.strip(), value)
            return
        attribute, sub, uri, type_filter = parse_path(path)
        if _other_extension(uri) and field_for_path(attribute, sub, uri) is None:
            # An attribute of an admin's own namespace (Entra's "CustomExtensionName", as a
            # path or as a key of a path-less value): accepted and not kept, as in a POST or
            # a PUT. The whole namespace still brings its c42OrgName, and takes it away.
            if op == "remove" or value is None:
                if _WHOLE_NAMESPACE.search(path):
                    self.clear_field("org_attribute")
            elif sub is None and isinstance(value, dict):
                self.set_extension(path.strip(), value)
            return
        self._check_mutable(op, attribute, uri, value)
        whole_complex = (
            sub is None
            and attribute.lower() in _COMPLEX
            and (uri is None or uri.lower() == CORE_USER.lower())
        )
        if field_for_path(attribute, sub, uri) is None and not whole_complex:
            raise errors.InvalidPath(f"Unknown attribute path {path!r}.")
        known_subs = _CORE_SUB_ATTRIBUTES.get(attribute.lower())
        core = uri is None or uri.lower() == CORE_USER.lower()
        if sub is not None and core and known_subs is not None and sub.lower() not in known_subs:
            raise errors.InvalidPath(f"Unknown attribute path {path!r}.")
        if isinstance(type_filter, tuple):  # emails[value eq "…"]
            kept = self.state["email"]
            if not kept or kept.lower() != type_filter[1].lower():  # not caseExact
                if op == "remove":
                    return  # nothing selected, nothing removed (as for group members)
                raise errors.NoTarget(f"No email matches {path!r}.")  # RFC 7644 §3.5.2.3
        elif isinstance(type_filter, filters.ValueFilter):
            if not self._selects_kept(attribute, type_filter, op, path):
                return  # an entry Gatehouse does not keep ("home", "primary eq false")
        elif type_filter is not None and type_filter not in _PREFERRED_TYPES | {"primary"}:
            return  # an email or address of another type ("home"): not kept here
        if op == "remove":
            if value is not None and not self._removes_kept(attribute, sub, uri, value):
                return  # Entra's remove of values: the kept one is not among them
            if whole_complex:
                # "remove emails" / "remove name" clears what Gatehouse keeps of it; name,
                # emails and addresses are IGNORED as leaves, so they are matched first.
                for f, name in SCIM_NAMES.items():
                    if name.split(".")[0].lower() == attribute.lower():
                        self.clear_field(f)
                return
            field = field_for_path(attribute, sub, uri)
            if field == "active":
                # Cleared, it would read as the default, active: a remove must not unblock
                # anyone (as an omitted or null active never does).
                raise errors.InvalidValue(
                    "active cannot be removed; replace it with true or false."
                )
            if field != IGNORED:
                self.clear_field(field)
            return
        if op == "add" and whole_complex and not _adds_a_kept_entry(attribute, value):
            # RFC 7644 §3.5.2.1: an add to a multi-valued attribute adds values. Adding only
            # entries Gatehouse does not keep (a "home" email) leaves the kept one as it is.
            return
        self.set_path(attribute, sub, uri, value, adding=op == "add")

    def _selects_kept(self, attribute: str, selector, op: str, path: str) -> bool:
        """Whether a value filter selects the email or address Gatehouse keeps, which reads
        back as ``type`` work and ``primary`` true. With none kept yet, an add or replace
        creates it when the filter would select it (``[type eq "work" and primary eq
        true].value``). A filter on the kept values that selects nothing is RFC 7644
        §3.5.2.3's ``noTarget`` for a replace, and removes nothing."""
        columns = _KEPT_COLUMNS[attribute.lower()]
        entry = {"type": "work", "primary": True}
        kept = {sub: self.state[column] for sub, column in columns.items()}
        if any(kept.values()):
            if selector.holds({**entry, **kept}):
                return True
        elif selector.holds(entry):
            return op != "remove"  # nothing kept: nothing to remove
        if selector.names & columns.keys():
            if op == "remove":
                return False
            raise errors.NoTarget(f"No {attribute} entry matches {path!r}.")
        return False

    def _removes_kept(self, attribute: str, sub: str | None, uri: str | None, value) -> bool:
        """A remove that names the values it removes (as Entra removes group members,
        ``"value": [{"value": "…"}]``) removes the kept email or address only when one of them
        is it. A single-valued attribute is removed whatever the value (RFC 7644 §3.5.2.2)."""
        attr_l = attribute.lower()
        if attr_l not in ("emails", "addresses") or not (
            uri is None or uri.lower() == CORE_USER.lower()
        ):
            return True
        columns = _KEPT_COLUMNS[attr_l]
        if sub is not None:  # emails[type eq "work"].value, "value": "old@…"
            column = columns.get(sub.lower())
            if column is None or not isinstance(value, str):
                return True
            return value.strip().lower() == self.state[column].lower()
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str) and attr_l == "emails":
                item = {"value": item}  # "value": "old@…", an address by itself
            if not isinstance(item, dict):
                return True  # not a list of values: remove as without one
            item = fold_keys(item)
            if str(item.get("type") or "work").lower() not in _PREFERRED_TYPES and not (
                _is_primary(item)
            ):
                continue  # a "home" entry: not the kept one
            if all(
                str(item[sub]).strip().lower() == self.state[column].lower()
                for sub, column in columns.items()
                if item.get(sub) is not None
            ):
                return True
        return False


_USER_REF = re.compile(r"/Users/([^/?#]+)/?(?:[?#].*)?$", re.IGNORECASE)


def _manager_reference(manager: dict) -> Any:
    """The manager's id: its ``value``, else the id its ``$ref`` ends with (RFC 7643 §4.3
    names both; a ``$ref`` alone was dropped, and a PUT cleared the manager), else SCIM 1.1's
    ``managerId`` (the enterprise extension as OneLogin's templates send it)."""
    value = manager.get("value")
    if value not in (None, ""):
        return value
    if manager.get("managerid") not in (None, ""):
        return manager["managerid"]
    ref = manager.get("$ref")
    if ref is None or ref == "":
        return value  # None or "": no manager
    match = _USER_REF.search(ref) if isinstance(ref, str) else None
    if match is None:
        raise errors.InvalidValue(f"manager.$ref {ref!r} names no user (…/Users/<id>).")
    return match.group(1)


def _read_only_attribute(attribute: str, uri: str | None) -> str | None:
    if uri is not None and uri.lower() != CORE_USER.lower():
        return None
    lowered = attribute.lower()
    return lowered if lowered in ("id", "meta", "groups") else None


def _adds_a_kept_entry(attribute: str, value: Any) -> bool:
    """Whether an add of ``emails`` or ``addresses`` brings an entry Gatehouse keeps: a
    primary one, a work one, or one with no type."""
    if attribute.lower() not in ("emails", "addresses") or not isinstance(value, (list, dict)):
        return True  # name, or a malformed value that set_path refuses
    items = [value] if isinstance(value, dict) else value
    items = [fold_keys(item) if isinstance(item, dict) else item for item in items]
    return any(
        not isinstance(item, dict)  # set_path refuses it
        or _is_primary(item)
        or str(item.get("type") or "work").lower() in _PREFERRED_TYPES
        for item in items
    )


def _with_enterprise_urn(path: str) -> str:
    """``path`` with OneLogin's name of the enterprise extension replaced by its own."""
    lowered = path.strip().lower()
    for alias in _ENTERPRISE_ALIASES:
        if lowered == alias or lowered.startswith(alias + ":"):
            return ENTERPRISE_USER + path.strip()[len(alias) :]
    return path


def _split_key(key: str) -> tuple[str, str | None, str | None]:
    if key.lower().startswith("urn:") and key.lower() not in _SCHEMA_URNS:
        try:
            attribute, sub, uri, _ = parse_path(key)
        except errors.InvalidPath:
            # A URN that names no attribute path: a whole extension whose name ends in a
            # version, as OneLogin's "urn:scim:schemas:extension:enterprise:2.0" does.
            return key, None, None
        return attribute, sub, uri
    return key, None, None


def _other_extension(uri: str | None) -> bool:
    """Whether a schema URI names an extension Gatehouse does not know: an admin's own
    namespace. Never one under SCIM's core or message URNs, nor the start of a schema URN
    Gatehouse knows (``…:core:2.0`` is how the whole core schema's path parses)."""
    if uri is None:
        return False
    lowered = uri.lower()
    if not lowered.startswith("urn:") or lowered.startswith(_SCIM_OWN):
        return False
    return not any(known.startswith(lowered) for known in (*_SCHEMA_URNS, *_ENTERPRISE_ALIASES))


_SCIM_OWN = ("urn:ietf:params:scim:schemas:core:", "urn:ietf:params:scim:api:")
# A path naming a whole namespace, not one of its attributes: "…:acme:2.0:User", or
# OneLogin's "…:acme:2.0".
_WHOLE_NAMESPACE = re.compile(r"(?::user|:\d+(?:\.\d+)*)\s*$", re.IGNORECASE)


def _is_custom_extension(key: Any, value: Any) -> bool:
    """A whole object of an extension Gatehouse does not know (its URN names no attribute)."""
    if not isinstance(key, str) or not isinstance(value, dict):
        return False
    if not key.lower().startswith("urn:") or key.lower() in _SCHEMA_URNS:
        return False
    attribute, sub, uri = _split_key(key)
    return field_for_path(attribute, sub, uri) is None


def _dotted(attribute: str, sub: str | None, uri: str | None) -> str:
    name = f"{attribute}.{sub}" if sub else attribute
    return f"{uri}:{name}" if uri else name


_VALUE_PATH = re.compile(r"^\s*(?P<attr>[^\[\]]+)\[(?P<filter>[^\[\]]*)\](?:\.(?P<sub>\w+))?\s*$")
_SIMPLE_FILTER = re.compile(
    r'^\s*(?P<attr>[\w$]+)\s+eq\s+(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>\S+))\s*$', re.I
)


def parse_value_filter(text: str, path: str) -> tuple[str, str]:
    """``type eq "work"`` → ("type", "work"). PATCH paths only ever filter on one attribute
    with ``eq`` (RFC 7644 §3.5.2 examples; what Okta and Entra send)."""
    match = _SIMPLE_FILTER.match(text)
    if not match:
        raise errors.InvalidPath(f"Unsupported value filter in path {path!r}.")
    value = match["quoted"] if match["quoted"] is not None else match["bare"]
    return match["attr"].lower(), value


# What an attribute path can be (RFC 7644 §3.10): an optional schema URN, a name, an optional
# sub-attribute. Anything else is refused before the filter parser sees it: it parses the path
# as a filter, and a long chain ("title pr and title pr and …") exhausts its recursion.
_ATTRIBUTE_PATH = re.compile(
    r"\s*(?:urn:[A-Za-z0-9:._-]+:)?[A-Za-z$][\w$-]*(?:\.[A-Za-z$][\w$-]*)?\s*",
    re.IGNORECASE,  # "URN:IETF:…" too: names and URNs are case-insensitive (RFC 7643 §2.1)
)


def _attribute_path(text: str, path: str) -> tuple[str, str | None, str | None]:
    if not _ATTRIBUTE_PATH.fullmatch(text):
        raise errors.InvalidPath(f"Cannot parse the path {path!r}.")
    try:
        parts = list(AttrPath(f'{text} eq ""', {}))
    except (SCIMParserError, IndexError, TypeError, ValueError, RecursionError):
        raise errors.InvalidPath(f"Cannot parse the path {path!r}.") from None
    if len(parts) != 1:
        raise errors.InvalidPath(f"Cannot parse the path {path!r}.")
    return parts[0].attr_name, parts[0].sub_attr, parts[0].uri


def parse_path(path: str) -> tuple[str, str | None, str | None, str | tuple | None]:
    """``(attribute, sub-attribute, schema URI, type filter)`` of a user PATCH path. The
    filter is the lower-cased ``type`` of a value path such as ``emails[type eq "work"].value``
    ("primary" for ``[primary eq true]``, ``("value", v)`` for ``emails[value eq v]``)."""
    match = _VALUE_PATH.match(path)
    if not match:
        attribute, sub, uri = _attribute_path(path, path)
        return attribute, sub, uri, None
    attribute, sub, uri = _attribute_path(match["attr"], path)
    if sub is not None:
        raise errors.InvalidPath(f"Cannot parse the path {path!r}.")
    if not _SIMPLE_FILTER.match(match["filter"]):
        # emails[type eq "work" and primary eq true]: any value filter (RFC 7644 §3.5.2),
        # tested against the one entry Gatehouse keeps (_apply_path_op).
        try:
            selector = filters.ValueFilter(match["filter"])
        except errors.InvalidFilter as exc:
            raise errors.InvalidPath(f"{exc.detail} (path {path!r})") from None
        if attribute.lower() in ("emails", "addresses"):
            return attribute, match["sub"], uri, selector
        if attribute.lower() not in _COMPLEX and field_for_path(attribute, None, uri) == IGNORED:
            return attribute, match["sub"], uri, _NOT_KEPT
        raise errors.InvalidPath(f"Unsupported value filter in path {path!r}.")
    filter_attr, filter_value = parse_value_filter(match["filter"], path)
    if filter_attr == "type":
        type_filter = filter_value.lower()
    elif filter_attr == "primary" and filter_value.lower() == "true":
        type_filter = "primary"
    elif filter_attr == "value" and attribute.lower() == "emails":
        # emails[value eq "ada@example.com"]: the kept email, if it is that one (RFC 7644
        # §3.5.2.2's example shape: remove a value by its value).
        return attribute, match["sub"], uri, ("value", filter_value)
    elif attribute.lower() not in _COMPLEX and field_for_path(attribute, None, uri) == IGNORED:
        # roles[value eq "Admin"], phoneNumbers[value eq "…"]: an attribute Gatehouse accepts
        # and does not keep, whichever of its values the filter selects.
        type_filter = _NOT_KEPT
    else:
        raise errors.InvalidPath(f"Unsupported value filter in path {path!r}.")
    return attribute, match["sub"], uri, type_filter


def state_of(link: ProviderUser) -> dict[str, Any]:
    """The staged-state view of a stored user (what PATCH starts from and diffs against)."""
    user = link.user
    manager_link = getattr(user.manager, "provider_link", None) if user.manager_id else None
    return {
        "username": user.username,
        "external_id": link.external_id,
        "active": user.status != "blocked" and user.status != "deactivated",
        "display_name": user.display_name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "title": user.title,
        "user_type": user.user_type,
        "email": user.email,
        "locality": user.locality,
        "region": user.region,
        "country": user.country,
        "employee_number": user.employee_number,
        "department": user.department,
        "division": user.division,
        "manager": str(manager_link.scim_id) if manager_link else None,
        "org_attribute": link.org_attribute,
    }


def etag(link: ProviderUser) -> str:
    """The version of a link read with its groups (``selectors``), or just created (none)."""
    namespace = org_namespace(link.org_attribute, link.provider.org_attribute_schema)
    return etag_of(link.version, parse_groups(getattr(link, "groups_json", None)), namespace)
