"""SCIM ``filter`` → a Django ``Q`` applied to a provider-scoped queryset, so filtering,
counting and paging all happen in SQL.

Extends scim2-filter-parser's Django Q transpiler where it falls short for us:
- an attribute it does not know is silently dropped there (``foo eq "x"`` would match every
  user); here it is ``400 invalidFilter``;
- ``eq`` on case-insensitive attributes (userName, emails) becomes ``LOWER(col) = LOWER(%s)``
  (the ``ci_exact`` lookup, identity/lookups.py), which the ``Lower(username)`` index serves
  on SQLite and PostgreSQL alike, instead of ``UPPER(col)``/``LIKE`` that scan the table;
- case-exact attributes (externalId, id: RFC 7643 ``caseExact``) compare exactly;
- ``active`` maps onto the user's status.
"""

from __future__ import annotations

import json
import re
import uuid

from django.db.models import Q
from scim2_filter_parser import ast as scim2ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError
from scim2_filter_parser.transpilers import django_q_object

from . import errors
from .schema import CORE_GROUP, CORE_USER, ENTERPRISE_USER

_ACTIVE = "__active__"
_KEPT_TYPE = "__kept_type__"

USER_FILTER_ATTRIBUTES = {
    ("id", None, None): "scim_id",
    ("externalid", None, None): "external_id",
    ("username", None, None): "user__username",
    ("displayname", None, None): "user__display_name",
    ("title", None, None): "user__title",
    ("usertype", None, None): "user__user_type",
    ("active", None, None): _ACTIVE,
    ("name", "givenname", None): "user__given_name",
    ("name", "familyname", None): "user__family_name",
    ("emails", None, None): "user__email",
    ("emails", "value", None): "user__email",
    ("emails", "type", None): "__kept_type__",  # only the work email is kept
    ("addresses", "type", None): "__kept_type__",  # only the work address is kept
    ("addresses", "locality", None): "user__locality",
    ("addresses", "region", None): "user__region",
    ("addresses", "country", None): "user__country",
    ("meta", "created", None): "user__created_at",
    ("meta", "lastmodified", None): "user__updated_at",
    ("employeenumber", None, ENTERPRISE_USER.lower()): "user__employee_number",
    ("department", None, ENTERPRISE_USER.lower()): "user__department",
    ("division", None, ENTERPRISE_USER.lower()): "user__division",
}
# The core schema URI may prefix any core attribute (RFC 7644 §3.10).
USER_FILTER_ATTRIBUTES.update(
    {
        (a, s, CORE_USER.lower()): f
        for (a, s, u), f in USER_FILTER_ATTRIBUTES.copy().items()
        if not u
    }
)

GROUP_FILTER_ATTRIBUTES = {
    ("id", None, None): "scim_id",
    ("externalid", None, None): "external_id",
    ("displayname", None, None): "display_name",
    ("members", None, None): "memberships__user__provider_link__scim_id",
    ("members", "value", None): "memberships__user__provider_link__scim_id",
    ("meta", "created", None): "created_at",
    ("meta", "lastmodified", None): "updated_at",
}
GROUP_FILTER_ATTRIBUTES.update(
    {
        (a, s, CORE_GROUP.lower()): f
        for (a, s, u), f in list(GROUP_FILTER_ATTRIBUTES.items())
        if not u
    }
)

CASE_EXACT = {"scim_id", "external_id", "memberships__user__provider_link__scim_id"}
_UUIDS = {"scim_id", "memberships__user__provider_link__scim_id"}
_DATES = ("created_at", "updated_at")  # meta.created, meta.lastModified: no case to ignore


def is_date(field: str) -> bool:
    return field.endswith(_DATES)


def is_text(field: str) -> bool:
    """Whether a mapped field is a text column (stored "" when unassigned), not an id or a
    date."""
    return field not in _UUIDS and not is_date(field)


# A term that holds for every row. Not ``Q()``: scim2-filter-parser drops an empty Q from an
# ``or`` ("emails.type eq \"work\" or userName eq \"bob\"" would select bob only) and does
# not negate one (``not (active pr)`` would select everyone).
ALWAYS = Q(pk__isnull=False)
NEVER = Q(pk__in=[])


class _Quoted(str):
    """A filter value written as a JSON string. scim2-filter-parser's lexer strips the quotes,
    and its transpiler then reads "true", "false" and "null" as literals; a quoted value is
    text (``externalId eq "true"`` compares with the text true)."""


# A filter's string value is a JSON string (RFC 7644 §3.4.2.2): it may hold escapes such as
# \" or \u00e9, which scim2-filter-parser's lexer does not know (it ends the value at the
# first quote). Such values are decoded here and stand in the text as a placeholder the lexer
# reads: NUL, which no filter may contain (``_check_text``), then the value's number. A
# value that is no valid JSON string is left as written.
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _tokens(filter_text: str):
    decoded: list[str] = []

    def placeholder(match: re.Match) -> str:
        if "\\" not in match.group(1):
            return match.group(0)
        try:
            value = json.loads(match.group(0))
        except ValueError:
            # Not JSON (a client that does not escape: "CORP\jdoe"): the text as written,
            # as the lexer reads it.
            return match.group(0)
        _check_text(value)
        decoded.append(value)
        return f'"\x00{len(decoded) - 1}"'

    for token in SCIMLexer().tokenize(_JSON_STRING.sub(placeholder, filter_text)):
        if token.type == "COMP_VALUE":
            value = token.value
            if value.startswith("\x00"):
                value = decoded[int(value[1:])]
            token.value = _Quoted(value)
        yield token


class _Transpiler(django_q_object.Transpiler):
    def visit_CompValue(self, node):
        if isinstance(node.value, _Quoted):
            return str(node.value)
        return super().visit_CompValue(node)

    def visit_AttrPath(self, node):
        key = (
            node.attr_name.lower(),
            node.sub_attr.value.lower() if node.sub_attr else None,
            node.uri.lower() if node.uri else None,
        )
        if key not in self.attr_map:
            raise errors.InvalidFilter(f"Cannot filter on {_name(node)!r}.")
        return self.attr_map[key]

    def visit_AttrExpr(self, node):
        if isinstance(node.attr_path.attr_name, scim2ast.Filter):
            return super().visit_AttrExpr(node)
        attr = self.visit(node.attr_path)
        if attr is None:
            return ALWAYS  # a filter that always holds (e.g. emails.type: only work is kept)
        op = node.value.lower()
        value = self.visit(node.comp_value) if node.comp_value else None
        if attr == _KEPT_TYPE:
            # Gatehouse keeps one email and one address, both "work": a filter on that type
            # selects every user, on any other type none.
            if op == "pr":
                return ALWAYS
            if op not in ("eq", "ne") or not isinstance(value, str):
                raise errors.InvalidFilter("type can only be compared with eq/ne and a string.")
            kept = (value.lower() == "work") == (op == "eq")
            return ALWAYS if kept else NEVER
        if attr == _ACTIVE:
            if op == "pr":
                return ALWAYS
            if isinstance(value, str) and value.lower() in ("true", "false"):
                value = value.lower() == "true"  # "True"/"False", as Entra writes booleans
            if op not in ("eq", "ne") or not isinstance(value, bool):
                raise errors.InvalidFilter("active can only be compared with eq/ne true/false.")
            query = Q(user__status="active")
            return query if (value is True) == (op == "eq") else ~query
        if op == "pr":
            if attr in CASE_EXACT and attr != "external_id":  # UUIDs: present = not null
                return Q(**{f"{attr}__isnull": False})
            return ~Q(**{attr: ""}) & Q(**{f"{attr}__isnull": False})
        if op in ("eq", "ne") and attr in _UUIDS and isinstance(value, str):
            # An id that is no UUID names no resource: eq selects none, ne all (it is a
            # valid filter, not a 400; Entra asks 'id eq "<its own id>"').
            try:
                value = uuid.UUID(value)
            except ValueError:
                return NEVER if op == "eq" else ALWAYS
        if is_date(attr) and op in ("co", "sw", "ew"):
            raise errors.InvalidFilter(f"{_name(node.attr_path)} is a date: compare it with "
                                       "eq, ne, gt, ge, lt or le.")  # fmt: skip
        if op in ("eq", "ne"):
            exact = attr in CASE_EXACT or is_date(attr) or isinstance(value, bool)
            lookup = "exact" if exact else "ci_exact"
            if value is None:
                lookup, value = "isnull", True
            query = Q(**{f"{attr}__{lookup}": value})
            return ~query if op == "ne" else query
        lookup = {
            "co": "icontains", "sw": "istartswith", "ew": "iendswith",
            "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte",
        }.get(op)  # fmt: skip
        if lookup is None:
            raise errors.InvalidFilter(f"Unknown filter operator {node.value!r}.")
        if attr in CASE_EXACT and lookup.startswith("i"):
            lookup = lookup[1:]
        return Q(**{f"{attr}__{lookup}": value})


def _name(node) -> str:
    sub = f".{node.sub_attr.value}" if node.sub_attr else ""
    return f"{node.attr_name}{sub}"


MAX_FILTER_LENGTH = 2000
_SURROGATE = re.compile("[\ud800-\udfff]")


MAX_FILTER_DEPTH = 32  # nested parentheses and brackets; the parser recurses per level


def _check_depth(filter_text: str) -> None:
    depth = deepest = 0
    for match in _BRACKETS_OUTSIDE_STRINGS.finditer(filter_text):
        if match.group() in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif match.group() in ")]":
            depth -= 1
    if deepest > MAX_FILTER_DEPTH:
        raise errors.InvalidFilter(f"The filter nests deeper than {MAX_FILTER_DEPTH} levels.")


_BRACKETS_OUTSIDE_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|[()\[\]]')


def _check_text(filter_text: str) -> None:
    if len(filter_text) > MAX_FILTER_LENGTH:
        raise errors.InvalidFilter("The filter is too long.")
    _check_depth(filter_text)
    if "\x00" in filter_text:  # PostgreSQL text cannot hold NUL
        raise errors.InvalidFilter("The filter contains a NUL character.")
    if _SURROGATE.search(filter_text):  # a search body's JSON can carry one
        raise errors.InvalidFilter("The filter contains an unpaired UTF-16 surrogate.")


def to_q(filter_text: str, attributes: dict) -> Q:
    """The Q for a SCIM filter; any problem is ``400 invalidFilter`` (STYLE.md)."""
    _check_text(filter_text)
    try:
        tree = SCIMParser().parse(_tokens(filter_text))
        if tree is None:
            raise errors.InvalidFilter(f"Cannot parse the filter {filter_text!r}.")
        query = _Transpiler(attributes).transpile(tree)
    except errors.ScimError:
        raise
    except (
        SCIMParserError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        RecursionError,
    ):
        raise errors.InvalidFilter(f"Cannot parse the filter {filter_text!r}.") from None
    return query if query is not None else Q()


# The filter every IdP sends before it creates or links a user (Okta, Entra, PingOne):
# ``userName eq "…"`` or ``externalId eq "…"``. A string without escapes: anything else goes
# through the parser.
_UNIQUE_EQUALITY = re.compile(
    # Spaces and tabs only, as the parser's lexer skips; a value without quotes or escapes.
    r"[ \t]*(?:urn:ietf:params:scim:schemas:core:2\.0:User:)?(userName|externalId)[ \t]+"
    r'eq[ \t]+"([^"\\]+)"[ \t]*',
    re.IGNORECASE,
)


def unique_user_equality(filter_text: str) -> tuple[str, str] | None:
    """``("username" | "external_id", value)`` when the filter is an equality on an attribute
    that names at most one of a provider's users (userName is unique case-insensitively,
    a non-empty externalId per provider), else None. Means what ``to_q`` does, and refuses
    what it refuses (too long, NUL)."""
    match = _UNIQUE_EQUALITY.fullmatch(filter_text)
    if match is None:
        return None
    _check_text(filter_text)
    attribute = "username" if match.group(1).lower() == "username" else "external_id"
    return attribute, match.group(2)
