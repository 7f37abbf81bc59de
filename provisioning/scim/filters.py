"""SCIM ``filter`` → a Django ``Q`` applied to a provider-scoped queryset, so filtering,
counting and paging all happen in SQL.

Extends scim2-filter-parser's Django Q transpiler where it falls short for us:
- an attribute it does not know is silently dropped there (``foo eq "x"`` would match every
  user); here it is ``400 invalidFilter``;
- its grammar gives ``and`` and ``or`` one precedence; here ``and`` binds tighter
  (``_by_precedence``);
- a value filter (``members[value sw "a" and value ew "b"]``) holds for one value, and each
  term on members reads its own member;
- what each comparison means, attribute by attribute, is filter_terms.py.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from contextvars import ContextVar

from django.db.models import Q
from scim2_filter_parser import ast as scim2ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError
from scim2_filter_parser.transpilers import django_q_object

from provisioning.models import ScimGroup

from . import errors
from .filter_terms import MEMBER_ID, NEVER, OPERATORS, term


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
        _check_value(value)  # text, not filter syntax: "[EU][Ops]" is a fine displayName
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
        terms = [[operands[0]]]  # the "or" of "and"s
        for operator, operand in zip(operators, operands[1:], strict=True):
            if operator == "and":
                terms[-1].append(operand)
            else:
                terms.append([operand])
        return _balanced("or", [_balanced("and", factors) for factors in terms])
    if isinstance(node, scim2ast.Filter):
        node.expr = _by_precedence(node.expr)
    elif isinstance(node, scim2ast.AttrExpr) and isinstance(
        node.attr_path.attr_name, scim2ast.Filter
    ):
        node.attr_path.attr_name = _by_precedence(node.attr_path.attr_name)
    return node


def _balanced(operator: str, items: list):
    """``items`` joined by ``operator`` as a balanced tree: the translator recurses once per
    level, so a flat chain of 200 terms (a left-deep tree, 200 levels) ran out of stack
    where this one is 8 levels deep."""
    while len(items) > 1:
        paired = [_logical(operator, a, b) for a, b in zip(items[::2], items[1::2], strict=False)]
        items = paired + ([items[-1]] if len(items) % 2 else [])
    return items[0]


def _logical(operator: str, left, right):
    return scim2ast.Filter(scim2ast.LogExpr(operator, left, right), False, None)


class _Transpiler(django_q_object.Transpiler):
    _in_value_filter = False  # translating a value filter (brackets) or one term on members
    _joined = False  # … that reads a member (a joined row)

    def visit_Filter(self, node):
        if node.negated and self._in_value_filter:
            # "members[not (value eq "a")]": some member that is not a (RFC 7644 §3.4.2.2),
            # which a negated join cannot say (it means "no member is a"). ne says it.
            raise errors.InvalidFilter("not is not supported inside a value filter: use ne.")
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
            raise _UnknownAttribute(f"Cannot filter on {_name(node)!r}.")
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
        try:
            return self._comparison(node)
        except _UnknownAttribute:
            if _UNKNOWN_MATCHES_NOTHING.get():
                return NEVER
            raise

    def _comparison(self, node):
        if isinstance(node.attr_path.attr_name, scim2ast.Filter):
            return self.is_filter(node)
        field = self.visit(node.attr_path)
        if field == MEMBER_ID:
            if not self._in_value_filter:
                return self._one_value(lambda: self.visit_AttrExpr(node))
            self._joined = True
        op = node.value.lower()
        if op not in OPERATORS:
            raise errors.InvalidFilter(f"Unknown filter operator {node.value!r}.")
        value = self.visit(node.comp_value) if node.comp_value else None
        return term(field, op, value, _name(node.attr_path))


class _UnknownAttribute(errors.InvalidFilter):
    """A filter names an attribute the resource type does not have."""


_UNKNOWN_MATCHES_NOTHING: ContextVar[bool] = ContextVar("unknown_matches_nothing", default=False)


@contextmanager
def unknown_attributes_match_nothing():
    """In this block a comparison on an attribute the resource type lacks matches none of its
    resources, instead of a 400: a root search (RFC 7644 §3.4.3) asks every type one filter,
    and ``displayName eq "Eng" or userName eq "ada@…"`` is about groups and users both."""
    token = _UNKNOWN_MATCHES_NOTHING.set(True)
    try:
        yield
    finally:
        _UNKNOWN_MATCHES_NOTHING.reset(token)


def _name(node) -> str:
    sub = f".{node.sub_attr.value}" if node.sub_attr else ""
    return f"{node.attr_name}{sub}"


MAX_FILTER_LENGTH = 2000
_SURROGATE = re.compile("[\ud800-\udfff]")


MAX_FILTER_DEPTH = 32  # nested parentheses and brackets; the parser recurses per level


def _check_depth(filter_text: str) -> None:
    depth = deepest = brackets = 0
    closed = -1  # where the last value filter ended
    for match in _BRACKETS_OUTSIDE_STRINGS.finditer(filter_text):
        if match.group() == "[":
            # RFC 7644 §3.4.2.2's grammar has one value filter per attribute path, holding
            # none: "emails[type eq "work"][primary eq true]" answered 200 with no results.
            if brackets or (closed >= 0 and not filter_text[closed : match.start()].strip()):
                raise errors.InvalidFilter("A value filter cannot hold or follow another one.")
            brackets += 1
        elif match.group() == "]":
            brackets -= 1
            closed = match.end()
        if match.group() in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif match.group() in ")]":
            depth -= 1
    if deepest > MAX_FILTER_DEPTH:
        raise errors.InvalidFilter(f"The filter nests deeper than {MAX_FILTER_DEPTH} levels.")


_BRACKETS_OUTSIDE_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|[()\[\]]')


def _check_text(filter_text: str) -> None:
    _check_value(filter_text)
    _check_depth(filter_text)


def _check_value(filter_text: str) -> None:
    if len(filter_text) > MAX_FILTER_LENGTH:
        raise errors.InvalidFilter("The filter is too long.")
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


class ValueFilter:
    """A PATCH path's value filter (``emails[type eq "work" and primary eq true]``, RFC 7644
    §3.5.2) as a test of one entry of a multi-valued attribute: Gatehouse keeps one email and
    one address, so a PATCH path selects that entry or none. ``names``: the sub-attributes
    the filter reads, lower-cased."""

    def __init__(self, text: str):
        _check_text(text)
        try:
            tree = SCIMParser().parse(_tokens(text))
        except (SCIMParserError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                RecursionError):  # fmt: skip
            tree = None
        if tree is None:
            raise errors.InvalidFilter(f"Cannot parse the value filter {text!r}.")
        self._tree = _by_precedence(tree)
        self.names: set[str] = set()
        self._check(self._tree)

    def _check(self, node) -> None:
        if isinstance(node, scim2ast.Filter):
            if node.namespace is not None:
                raise errors.InvalidFilter("A value filter cannot hold another one.")
            self._check(node.expr)
        elif isinstance(node, scim2ast.LogExpr):
            self._check(node.expr1)
            self._check(node.expr2)
        else:
            path = node.attr_path
            if not isinstance(path.attr_name, str) or path.sub_attr or path.uri:
                raise errors.InvalidFilter("A value filter compares sub-attributes by name.")
            if node.value.lower() not in OPERATORS:
                raise errors.InvalidFilter(f"Unknown filter operator {node.value!r}.")
            self.names.add(path.attr_name.lower())

    def holds(self, entry: dict) -> bool:
        """Whether ``entry`` (lower-cased sub-attribute names; an absent one has no value)
        is selected. Text compares without regard to case: type, value and the address
        parts are not caseExact (RFC 7643 §4.1.2)."""
        return self._holds(self._tree, entry)

    def _holds(self, node, entry: dict) -> bool:
        if isinstance(node, scim2ast.Filter):
            return self._holds(node.expr, entry) != bool(node.negated)
        if isinstance(node, scim2ast.LogExpr):
            if node.op.lower() == "and":
                return self._holds(node.expr1, entry) and self._holds(node.expr2, entry)
            return self._holds(node.expr1, entry) or self._holds(node.expr2, entry)
        actual = entry.get(node.attr_path.attr_name.lower())
        op = node.value.lower()
        expected = node.comp_value.value if node.comp_value else None
        return _compares(actual, op, expected)

    def named_values(self) -> list[str] | None:
        """The ``value``s the filter names, when that is all it does: ``value eq "a"``,
        joined by ``or``, in parentheses, each term perhaps with ``type eq "User"`` (true of
        every group member). None for any other filter."""
        return _named_values(self._tree)


def _named_values(node) -> list[str] | None:
    if isinstance(node, scim2ast.Filter):
        return None if node.negated else _named_values(node.expr)
    if isinstance(node, scim2ast.LogExpr):
        left, right = _named_values(node.expr1), _named_values(node.expr2)
        if node.op.lower() == "or":
            return None if left is None or right is None else left + right
        if left is not None and _is_user_type(node.expr2):
            return left
        if right is not None and _is_user_type(node.expr1):
            return right
        return None
    name, op = node.attr_path.attr_name.lower(), node.value.lower()
    expected = node.comp_value.value if node.comp_value else None
    if name == "value" and op == "eq" and isinstance(expected, str):
        return [str(expected)]
    return None


def _is_user_type(node) -> bool:
    while isinstance(node, scim2ast.Filter) and not node.negated:
        node = node.expr
    if not isinstance(node, scim2ast.AttrExpr):
        return False
    expected = node.comp_value.value if node.comp_value else None
    return (
        node.attr_path.attr_name.lower() == "type"
        and node.value.lower() == "eq"
        and isinstance(expected, str)
        and expected.lower() == "user"
    )


def _compares(actual, op: str, expected) -> bool:
    if op == "pr":
        return actual not in (None, "")
    if not isinstance(expected, _Quoted) and isinstance(expected, str):
        expected = {"true": True, "false": False, "null": None}.get(expected.lower(), expected)
    if isinstance(actual, bool) and isinstance(expected, str):
        # Entra writes booleans as strings: primary eq "True"
        expected = {"true": True, "false": False}.get(expected.lower(), expected)
    if actual in (None, ""):
        return {"eq": expected is None, "ne": expected is not None}.get(op, False)
    if type(actual) is not type(expected) and not (
        isinstance(actual, str) and isinstance(expected, str)
    ):
        return op == "ne"
    if isinstance(actual, str):
        actual, expected = actual.lower(), expected.lower()
    if isinstance(actual, bool) and op not in ("eq", "ne"):
        return False
    return {
        "eq": actual == expected, "ne": actual != expected,
        "co": isinstance(actual, str) and expected in actual,
        "sw": isinstance(actual, str) and actual.startswith(expected),
        "ew": isinstance(actual, str) and actual.endswith(expected),
        "gt": actual > expected, "ge": actual >= expected,
        "lt": actual < expected, "le": actual <= expected,
    }[op]  # fmt: skip


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
    value = match.group(2).strip()  # kept trimmed (filter_terms._text_query)
    return (attribute, value) if value else None
