"""SCIM ``filter`` → a Django ``Q`` applied to a provider-scoped queryset, so filtering,
counting and paging all happen in SQL.

Extends scim2-filter-parser's Django Q transpiler where it falls short for us:
- an attribute it does not know is silently dropped there (``foo eq "x"`` would match every
  user); here it is ``400 invalidFilter``;
- its grammar gives ``and`` and ``or`` one precedence; here ``and`` binds tighter
  (``_by_precedence``);
- ``eq`` on case-insensitive attributes (userName, emails) becomes ``LOWER(col) = LOWER(%s)``
  (the ``ci_exact`` lookup, identity/lookups.py), which the ``Lower(username)`` index serves
  on SQLite and PostgreSQL alike, instead of ``UPPER(col)``/``LIKE`` that scan the table;
- case-exact attributes (externalId, id: RFC 7643 ``caseExact``) compare exactly, ``co``,
  ``sw`` and ``ew`` too (SQLite's ``LIKE`` ignores case);
- a multi-valued attribute (emails, addresses, members) matches only through a value it
  has (RFC 7644 §3.4.2.2), and ``pr`` means a non-empty value;
- ``active`` maps onto the user's status; timestamps are RFC 3339.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, time

from django.db.models import F, Q, TextField, Value
from django.db.models.functions import Cast, Replace, Right, StrIndex
from django.db.models.lookups import Exact, GreaterThan
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from scim2_filter_parser import ast as scim2ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError
from scim2_filter_parser.transpilers import django_q_object

from provisioning.models import ScimGroup

from . import errors
from .schema import CORE_GROUP, CORE_USER, ENTERPRISE_USER

# Attributes that are no column. Their names start with "__": sortBy refuses them (views.py).
_ACTIVE = "__active__"
_EMAIL_TYPE = "__email_type__"  # only the work email is kept
_ADDRESS_TYPE = "__address_type__"  # only the work address is kept
_NAME = "__name__"  # complex attributes: only "pr" applies to them as a whole
_ADDRESSES = "__addresses__"
_MANAGER_ID = "user__manager__provider_link__scim_id"
_MEMBER_ID = "memberships__user__provider_link__scim_id"

USER_FILTER_ATTRIBUTES = {
    ("id", None, None): "scim_id",
    ("externalid", None, None): "external_id",
    ("username", None, None): "user__username",
    ("displayname", None, None): "user__display_name",
    ("title", None, None): "user__title",
    ("usertype", None, None): "user__user_type",
    ("active", None, None): _ACTIVE,
    ("name", None, None): _NAME,
    ("name", "givenname", None): "user__given_name",
    ("name", "familyname", None): "user__family_name",
    ("emails", None, None): "user__email",
    ("emails", "value", None): "user__email",
    ("emails", "type", None): _EMAIL_TYPE,
    ("addresses", None, None): _ADDRESSES,
    ("addresses", "type", None): _ADDRESS_TYPE,
    ("addresses", "locality", None): "user__locality",
    ("addresses", "region", None): "user__region",
    ("addresses", "country", None): "user__country",
    ("meta", "created", None): "user__created_at",
    ("meta", "lastmodified", None): "user__updated_at",
    ("employeenumber", None, ENTERPRISE_USER.lower()): "user__employee_number",
    ("department", None, ENTERPRISE_USER.lower()): "user__department",
    ("division", None, ENTERPRISE_USER.lower()): "user__division",
    ("manager", None, ENTERPRISE_USER.lower()): _MANAGER_ID,
    ("manager", "value", ENTERPRISE_USER.lower()): _MANAGER_ID,
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
    ("members", None, None): _MEMBER_ID,
    ("members", "value", None): _MEMBER_ID,
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

CASE_EXACT = {"scim_id", "external_id", _MEMBER_ID, _MANAGER_ID}
_UUIDS = {"scim_id", _MEMBER_ID, _MANAGER_ID}
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

# Gatehouse keeps one email and one address per user, read back as "work" (docs/scim.md),
# stored as text columns that are "" when unassigned.
_HAS_EMAIL = ~Q(user__email="")
_HAS_ADDRESS = ~Q(user__locality="") | ~Q(user__region="") | ~Q(user__country="")
# RFC 7644 §3.4.2.2: a filter on a multi-valued attribute matches if one of its values does,
# so a user without that value never matches (``emails.value ne "x"`` needs an email).
_HAS_VALUE = {
    "user__email": _HAS_EMAIL,
    "user__locality": _HAS_ADDRESS,
    "user__region": _HAS_ADDRESS,
    "user__country": _HAS_ADDRESS,
}
_PRESENT = {
    _EMAIL_TYPE: _HAS_EMAIL,
    _ADDRESS_TYPE: _HAS_ADDRESS,
    _ADDRESSES: _HAS_ADDRESS,
    _NAME: ~Q(user__given_name="") | ~Q(user__family_name=""),
    # A manager shows only when this provider provisioned it (users.py, user_rows.py).
    _MANAGER_ID: Q(user__manager__provider_link__provider=F("provider")),
}
_ORDERINGS = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
_OPERATORS = {"eq", "ne", "co", "sw", "ew", "pr", *_ORDERINGS}


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
        elif token.type == "NUMBER":
            token.value = int(token.value)  # a number is no text (``userName gt 5``: 400)
        yield token


def _is_chain(node) -> bool:
    """An ``and``/``or`` written without parentheses around it: the parser wraps a
    parenthesized, negated or bracketed one in a further Filter."""
    return (
        isinstance(node, scim2ast.Filter)
        and isinstance(node.expr, scim2ast.LogExpr)
        and not node.negated
        and node.namespace is None
    )


def _by_precedence(node):
    """``node`` with every ``and``/``or`` chain regrouped so that ``and`` binds tighter
    than ``or`` (RFC 7644 §3.4.2.2). scim2-filter-parser's grammar gives both one level
    (``precedence = (("left", OR, AND), …)``), so ``a or b and c`` parses as
    ``(a or b) and c``."""
    if _is_chain(node):
        operands, operators, pending = [], [], [node]
        while pending:  # left to right, without recursing down a long chain
            item = pending.pop()
            if isinstance(item, str):
                operators.append(item)
            elif _is_chain(item):
                pending += [item.expr.expr2, item.expr.op.lower(), item.expr.expr1]
            else:
                operands.append(_by_precedence(item))
        terms = [operands[0]]
        for operator, operand in zip(operators, operands[1:], strict=True):
            if operator == "and":
                terms[-1] = _logical("and", terms[-1], operand)
            else:
                terms.append(operand)
        result = terms[0]
        for term in terms[1:]:
            result = _logical("or", result, term)
        return result
    if isinstance(node, scim2ast.Filter):
        node.expr = _by_precedence(node.expr)
    elif isinstance(node, scim2ast.AttrExpr) and isinstance(
        node.attr_path.attr_name, scim2ast.Filter
    ):
        node.attr_path.attr_name = _by_precedence(node.attr_path.attr_name)
    return node


def _logical(operator: str, left, right):
    return scim2ast.Filter(scim2ast.LogExpr(operator, left, right), False, None)


class _Transpiler(django_q_object.Transpiler):
    _in_value_filter = False  # translating a value filter (brackets) or one term on members
    _joined = False  # … that reads a member (a joined row)

    def visit_Filter(self, node):
        if node.namespace is None or self._in_value_filter:
            return super().visit_Filter(node)
        return self._one_value(lambda: super(_Transpiler, self).visit_Filter(node))

    def _one_value(self, translate) -> Q:
        """A value filter's terms hold for one value of the attribute (RFC 7644 §3.4.2.2:
        ``members[value sw "a" and value ew "b"]``). A member is a joined row: each value
        filter or term on members outside brackets reads its own (in one ``filter()``,
        Django would make ``members[value eq "a"] and members[value eq "b"]`` one member)."""
        self._in_value_filter, self._joined = True, False
        try:
            query = translate()
        finally:
            self._in_value_filter = False
        if self._joined:
            return Q(pk__in=ScimGroup.objects.filter(query).values("pk"))
        return query

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

    def is_filter(self, node):
        """``emails[type eq "work"].value pr``: the value filter, and the comparison on the
        sub-attribute. The parser's own reads ``pr`` as "not null" and drops ``ne``'s
        negation; here the comparison means what it means outside brackets."""
        value_filter = node.attr_path.attr_name
        namespace = value_filter.namespace
        path = scim2ast.AttrPath(namespace.attr_name, namespace.sub_attr, namespace.uri)
        comparison = scim2ast.AttrExpr(node.value, path, node.comp_value)
        if self._in_value_filter:
            return self.visit(value_filter) & self.visit_AttrExpr(comparison)
        return self._one_value(lambda: self.is_filter(node))

    def visit_AttrExpr(self, node):
        if isinstance(node.attr_path.attr_name, scim2ast.Filter):
            return self.is_filter(node)
        field = self.visit(node.attr_path)
        if field == _MEMBER_ID:
            if not self._in_value_filter:
                return self._one_value(lambda: self.visit_AttrExpr(node))
            self._joined = True
        op = node.value.lower()
        if op not in _OPERATORS:
            raise errors.InvalidFilter(f"Unknown filter operator {node.value!r}.")
        value = self.visit(node.comp_value) if node.comp_value else None
        name = _name(node.attr_path)
        if field in (_EMAIL_TYPE, _ADDRESS_TYPE):
            return _kept_type(field, op, value)
        if op == "pr":
            return _present(field)
        if field in _PRESENT and field not in _UUIDS:
            raise errors.InvalidFilter(f"{name} is complex: filter on its sub-attributes.")
        if field == _ACTIVE:
            if isinstance(value, str) and value.lower() in ("true", "false"):
                value = value.lower() == "true"  # "True"/"False", as Entra writes booleans
            if op not in ("eq", "ne") or not isinstance(value, bool):
                raise errors.InvalidFilter("active can only be compared with eq/ne true/false.")
            query = Q(user__status="active")
            return query if (value is True) == (op == "eq") else ~query
        if is_date(field):
            return _date_query(field, op, value, name)
        if op in _ORDERINGS and not isinstance(value, str):
            raise errors.InvalidFilter(f"{name} is text: compare it with a string.")
        if field in _UUIDS:
            return _id_query(field, op, value)
        query = _text_query(field, op, value)
        if field in _HAS_VALUE:
            return query & _HAS_VALUE[field]
        return query


def _present(field: str) -> Q:
    """``pr``: the attribute has a value (RFC 7644 §3.4.2.2), text a non-empty one."""
    if field in _PRESENT:
        return _PRESENT[field]
    if field == _ACTIVE or is_date(field):  # always assigned
        return ALWAYS
    if field in _UUIDS:
        return Q(**{f"{field}__isnull": False})
    return ~Q(**{field: ""}) & Q(**{f"{field}__isnull": False})


def _kept_type(field: str, op: str, value) -> Q:
    """emails.type, addresses.type: the one kept value is "work" when there is one (type is
    not caseExact, RFC 7643 §4.1.2)."""
    present = _PRESENT[field]
    if op == "pr":
        return present
    if not isinstance(value, str):
        raise errors.InvalidFilter("type can only be compared with a string.")
    kept, value = "work", value.lower()
    holds = {
        "eq": kept == value, "ne": kept != value, "co": value in kept,
        "sw": kept.startswith(value), "ew": kept.endswith(value),
        "gt": kept > value, "ge": kept >= value, "lt": kept < value, "le": kept <= value,
    }[op]  # fmt: skip
    return present if holds else NEVER


def _text_query(field: str, op: str, value) -> Q:
    if op in ("eq", "ne"):
        exact = field in CASE_EXACT or isinstance(value, bool)
        lookup = "exact" if exact else "ci_exact"
        if value is None:
            lookup, value = "isnull", True
        query = Q(**{f"{field}__{lookup}": value})
        return ~query if op == "ne" else query
    if op in _ORDERINGS:
        return Q(**{f"{field}__{_ORDERINGS[op]}": value})
    if field in CASE_EXACT:
        return _case_exact_match(F(field), op, value)
    lookup = {"co": "icontains", "sw": "istartswith", "ew": "iendswith"}[op]
    return Q(**{f"{field}__{lookup}": value})


def _case_exact_match(column, op: str, value) -> Q:
    """``co``/``sw``/``ew`` respecting case on every database: SQLite's ``LIKE`` (Django's
    ``contains``) ignores ASCII case. ``INSTR``/``STRPOS`` and ``SUBSTR``/``RIGHT`` do not,
    and read ``%`` and ``_`` as themselves."""
    if not isinstance(value, str):
        raise errors.InvalidFilter(f"{op} takes a string.")
    if op == "co" or not value:  # "" is in every text, at its start and at its end
        return Q(GreaterThan(StrIndex(column, Value(value)), 0))
    if op == "sw":
        return Q(Exact(StrIndex(column, Value(value)), 1))
    return Q(Exact(Right(column, len(value)), Value(value)))


def _id_query(field: str, op: str, value) -> Q:
    """id, members.value, manager.value: UUIDs, case-exact."""
    multi_valued = field == _MEMBER_ID
    if op in ("co", "sw", "ew"):
        if not isinstance(value, str):
            raise errors.InvalidFilter(f"{op} takes a string.")
        # Text without dashes, as Django's UUID lookups compare where a UUID is 32 hex digits
        # (SQLite); PostgreSQL's uuid reads as text with dashes.
        column = Replace(Cast(F(field), TextField()), Value("-"), Value(""))
        return _case_exact_match(column, op, value.replace("-", ""))
    if op in ("eq", "ne") and isinstance(value, str):
        # An id that is no UUID names no resource: eq selects none, ne all (it is a
        # valid filter, not a 400; Entra asks 'id eq "<its own id>"').
        try:
            value = uuid.UUID(value)
        except ValueError:
            if op == "eq":
                return NEVER
            return _present(field) if multi_valued else ALWAYS
    if op == "ne" and multi_valued and value is not None:
        # Some member whose id differs (RFC 7644 §3.4.2.2), not "no member has it": a
        # negated lookup across a join would also select groups without members.
        return Q(**{f"{field}__lt": value}) | Q(**{f"{field}__gt": value})
    if op in ("eq", "ne"):
        query = Q(**{f"{field}__isnull": True} if value is None else {field: value})
        return ~query if op == "ne" else query
    return Q(**{f"{field}__{_ORDERINGS[op]}": value})


def _timestamp(value, name: str) -> datetime:
    """An RFC 3339 timestamp, aware (RFC 3339 §5.6: "T" and "Z" may be lower case). One
    without an offset is read in the default time zone, as Django reads it."""
    parsed = None
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value.upper())
            if parsed is None and (day := parse_date(value)) is not None:
                parsed = datetime.combine(day, time())
        except ValueError:  # well formed, but no date (month 13)
            parsed = None
    if parsed is None:
        raise errors.InvalidFilter(f"{name} is a timestamp: {value!r} is no RFC 3339 one.")
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def _date_query(field: str, op: str, value, name: str) -> Q:
    if op in ("co", "sw", "ew"):
        raise errors.InvalidFilter(f"{name} is a date: compare it with "
                                   "eq, ne, gt, ge, lt or le.")  # fmt: skip
    moment = _timestamp(value, name)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        # .NET's DateTime.MinValue written with a local offset ("0001-01-01T00:00:00+01:00"),
        # or MaxValue with a negative one, is before (or after) every time Python and the
        # database drivers can hold: the comparison holds for every row, or for none.
        earliest = moment.year == 1
        holds = {"eq": False, "ne": True, "gt": earliest, "ge": earliest,
                 "lt": not earliest, "le": not earliest}[op]  # fmt: skip
        return ALWAYS if holds else NEVER
    if op in ("eq", "ne"):
        query = Q(**{field: moment})
        return ~query if op == "ne" else query
    return Q(**{f"{field}__{_ORDERINGS[op]}": moment})


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
        query = _Transpiler(attributes).transpile(_by_precedence(tree))
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
