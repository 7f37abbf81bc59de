"""What one comparison in a SCIM filter means: ``<attribute> <op> <value>`` on the column
the attribute maps to, as a Django ``Q`` (filters.py parses the filter and combines them).

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

import uuid
from datetime import UTC, datetime, time

from django.db.models import F, Q, TextField, Value
from django.db.models.functions import Cast, Lower, Replace, Right, StrIndex
from django.db.models.lookups import Contains, EndsWith, Exact, GreaterThan, StartsWith
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from . import errors
from .schema import CORE_GROUP, CORE_USER, ENTERPRISE_USER

# Attributes that are no column. Their names start with "__": sortBy refuses them (views.py).
_ACTIVE = "__active__"
_EMAIL_TYPE = "__email_type__"  # only the work email is kept
_ADDRESS_TYPE = "__address_type__"  # only the work address is kept
_EMAIL_PRIMARY = "__email_primary__"  # and each reads back as the primary one
_ADDRESS_PRIMARY = "__address_primary__"
_USER_RESOURCE_TYPE = "__user_resource_type__"  # meta.resourceType
_GROUP_RESOURCE_TYPE = "__group_resource_type__"
_NAME = "__name__"  # complex attributes: only "pr" applies to them as a whole
_ADDRESSES = "__addresses__"
_MANAGER_ID = "user__manager__provider_link__scim_id"
MEMBER_ID = "memberships__user__provider_link__scim_id"

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
    ("emails", "primary", None): _EMAIL_PRIMARY,
    ("addresses", None, None): _ADDRESSES,
    ("addresses", "type", None): _ADDRESS_TYPE,
    ("addresses", "primary", None): _ADDRESS_PRIMARY,
    ("addresses", "locality", None): "user__locality",
    ("addresses", "region", None): "user__region",
    ("addresses", "country", None): "user__country",
    ("meta", "created", None): "user__created_at",
    ("meta", "lastmodified", None): "user__updated_at",
    ("meta", "resourcetype", None): _USER_RESOURCE_TYPE,
    ("employeenumber", None, ENTERPRISE_USER.lower()): "user__employee_number",
    ("department", None, ENTERPRISE_USER.lower()): "user__department",
    ("division", None, ENTERPRISE_USER.lower()): "user__division",
    ("manager", None, ENTERPRISE_USER.lower()): _MANAGER_ID,
    ("manager", "value", ENTERPRISE_USER.lower()): _MANAGER_ID,
}
# Standard attributes Gatehouse accepts and does not keep (docs/scim.md): no user has a
# value for them here, and a comparison on one reads as on a kept attribute a user has no
# value for: a single-valued one as empty text (``ne`` holds, ``pr``, ``eq``, ``co`` … do
# not, as for a user without a title), a multi-valued one as no value at all (nothing
# holds, RFC 7644 §3.4.2.2), instead of refusing a filter that names one (the RFC's own
# example ``emails[…] or ims[type eq "xmpp" and value co "@foo.com"]``).
_NOT_KEPT = "__not_kept__"  # single-valued
_NOT_KEPT_MULTI = "__not_kept_multi__"
_MULTI = ("phonenumbers", "ims", "photos", "entitlements", "roles", "x509certificates")
USER_FILTER_ATTRIBUTES.update(
    {(name, None, None): _NOT_KEPT for name in ("nickname", "profileurl", "preferredlanguage",
                                                "locale", "timezone")}
    | {(name, sub, None): _NOT_KEPT_MULTI for name in _MULTI
       for sub in (None, "value", "display", "type", "primary")}
    | {("name", sub, None): _NOT_KEPT
       for sub in ("formatted", "middlename", "honorificprefix", "honorificsuffix")}
    | {("emails", "display", None): _NOT_KEPT_MULTI}
    | {("addresses", sub, None): _NOT_KEPT_MULTI
       for sub in ("streetaddress", "postalcode", "formatted", "display")}
    | {(name, None, ENTERPRISE_USER.lower()): _NOT_KEPT for name in ("costcenter", "organization")}
    | {("manager", "displayname", ENTERPRISE_USER.lower()): _NOT_KEPT}
)  # fmt: skip
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
    ("members", None, None): MEMBER_ID,
    ("members", "value", None): MEMBER_ID,
    ("meta", "created", None): "created_at",
    ("meta", "lastmodified", None): "updated_at",
    ("meta", "resourcetype", None): _GROUP_RESOURCE_TYPE,
}
GROUP_FILTER_ATTRIBUTES.update(
    {
        (a, s, CORE_GROUP.lower()): f
        for (a, s, u), f in list(GROUP_FILTER_ATTRIBUTES.items())
        if not u
    }
)

# Text kept as sent, outer white space included: a group's displayName (groups.py).
_KEPT_AS_SENT = {"display_name"}
CASE_EXACT = {"scim_id", "external_id", MEMBER_ID, _MANAGER_ID}
_UUIDS = {"scim_id", MEMBER_ID, _MANAGER_ID}
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
OPERATORS = {"eq", "ne", "co", "sw", "ew", "pr", *_ORDERINGS}


def term(field: str, op: str, value, name: str) -> Q:
    """One comparison, ``<attribute> <op> <value>``, on the column (or pseudo-column) the
    attribute maps to. ``name`` is the attribute as the client wrote it, for errors."""
    if field == _NOT_KEPT_MULTI:
        return NEVER
    if field == _NOT_KEPT:  # as a kept text column holding "" (no value): _text_query
        if op in _ORDERINGS and not isinstance(value, str):
            raise errors.InvalidFilter(f"{name} is text: compare it with a string.")
        return ALWAYS if _empty_text_holds(op, value) else NEVER
    if field in (_EMAIL_TYPE, _ADDRESS_TYPE):
        return _kept_type(field, op, value)
    if field in _KEPT_CONSTANTS:
        return _kept_constant(field, op, value, name)
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
    return present if _holds("work", op, value.lower()) else NEVER


def _holds(kept: str, op: str, value: str) -> bool:
    """``<kept> <op> <value>``, for an attribute whose value is known without a query."""
    return {
        "eq": kept == value, "ne": kept != value, "co": value in kept,
        "sw": kept.startswith(value), "ew": kept.endswith(value),
        "gt": kept > value, "ge": kept >= value, "lt": kept < value, "le": kept <= value,
    }[op]  # fmt: skip


# Attributes whose value is the same for every resource that has one: (the value, which
# resources have it).
_KEPT_CONSTANTS = {
    _EMAIL_PRIMARY: (True, _HAS_EMAIL),
    _ADDRESS_PRIMARY: (True, _HAS_ADDRESS),
    _USER_RESOURCE_TYPE: ("User", ALWAYS),
    _GROUP_RESOURCE_TYPE: ("Group", ALWAYS),
}


def _kept_constant(field: str, op: str, value, name: str) -> Q:
    """emails.primary, addresses.primary (the kept entry reads back as primary), and
    meta.resourceType (caseExact, RFC 7643 §3.1)."""
    kept, present = _KEPT_CONSTANTS[field]
    if op == "pr":
        return present
    if isinstance(kept, bool):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"  # Entra writes booleans as strings
        if op not in ("eq", "ne") or not isinstance(value, bool):
            raise errors.InvalidFilter(f"{name} can only be compared with eq/ne true/false.")
        holds = (value == kept) == (op == "eq")
    else:
        if not isinstance(value, str):
            raise errors.InvalidFilter(f"{name} can only be compared with a string.")
        holds = _holds(kept, op, value)
    return present if holds else NEVER


def _empty_text_holds(op: str, value) -> bool:
    """Whether ``"" <op> value`` holds as ``_text_query`` compares a text column that holds
    "": ``eq null`` is "is null" (a text column never is), ``eq``/``ne`` strip the value,
    case is ignored."""
    if value is None:
        return op == "ne"
    text = str(value).lower()
    if op in ("eq", "ne"):
        return (text.strip() == "") == (op == "eq")
    return {
        "co": text == "", "sw": text == "", "ew": text == "",
        "gt": False, "ge": text == "", "lt": text != "", "le": True,
    }[op]  # fmt: skip


def _text_query(field: str, op: str, value) -> Q:
    if op in ("eq", "ne"):
        if isinstance(value, str) and field not in _KEPT_AS_SENT:
            # Kept without outer white space (users.coerce_string): an IdP's lookup of
            # " bob@example.com " before its create must find what that create stored.
            value = value.strip()
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
    if isinstance(value, str) and not value.isascii():
        # SQLite's LIKE ignores the case of ASCII letters only ("ång" missed "Ångström"):
        # both sides lower-cased, by the lower() every connection has (console/sqlite3).
        # An ASCII value needs no more than LIKE, and keeps it: no function call per row.
        lookup = {"co": Contains, "sw": StartsWith, "ew": EndsWith}[op]
        return Q(lookup(Lower(F(field)), value.lower()))
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
    multi_valued = field == MEMBER_ID
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
