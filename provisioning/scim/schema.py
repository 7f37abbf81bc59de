"""The SCIM attributes Gatehouse understands, and where each lands on a user.

Paths are matched case-insensitively (RFC 7643 §2.1: attribute names are case-insensitive),
as ``(attribute, sub-attribute, schema URI)`` triples parsed by scim2-filter-parser.
"""

from __future__ import annotations

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# The custom extension for the organization attribute (PRODUCT.md: c42OrgName, sent in the
# provider's custom extension or at top level).
GATEHOUSE_USER = "urn:ietf:params:scim:schemas:extension:gatehouse:2.0:User"
ORG_ATTRIBUTE = "c42OrgName"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# Staged user fields: what a SCIM user is made of here.
USER_FIELDS = (
    "username",
    "external_id",
    "active",
    "display_name",
    "given_name",
    "family_name",
    "title",
    "user_type",
    "email",
    "locality",
    "region",
    "country",
    "employee_number",
    "department",
    "division",
    "manager",
    "org_attribute",
)

IGNORED = "ignored"  # a standard attribute Gatehouse accepts but does not keep

_core = CORE_USER.lower()
_ent = ENTERPRISE_USER.lower()

# (attribute, sub-attribute) → user field, for the core schema (or no URI).
CORE_PATHS = {
    ("username", None): "username",
    ("externalid", None): "external_id",
    ("active", None): "active",
    ("displayname", None): "display_name",
    ("title", None): "title",
    ("usertype", None): "user_type",
    ("name", "givenname"): "given_name",
    ("name", "familyname"): "family_name",
    ("givenname", None): "given_name",  # some clients flatten name.* into the top level
    ("familyname", None): "family_name",
    ("emails", "value"): "email",
    ("addresses", "locality"): "locality",
    ("addresses", "region"): "region",
    ("addresses", "country"): "country",
    (ORG_ATTRIBUTE.lower(), None): "org_attribute",
}
ENTERPRISE_PATHS = {
    ("employeenumber", None): "employee_number",
    ("department", None): "department",
    ("division", None): "division",
    ("manager", None): "manager",
    ("manager", "value"): "manager",
    ("manager", "managerid"): "manager",  # SCIM 1.1's name of it (OneLogin's templates)
}
CUSTOM_PATHS = {(ORG_ATTRIBUTE.lower(), None): "org_attribute"}

# Standard attributes IdPs send by default (Entra maps phone numbers, street address,
# preferredLanguage...) that Gatehouse does not keep: accepted and ignored, never a 400.
IGNORED_CORE = {
    "nickname", "profileurl", "preferredlanguage", "locale", "timezone", "password",
    "phonenumbers", "ims", "photos", "entitlements", "roles", "x509certificates", "groups",
    "name", "emails", "addresses", "schemas", "id", "meta",
}  # fmt: skip
IGNORED_ENTERPRISE = {"costcenter", "organization", "manager"}


def field_for_path(attribute: str, sub_attribute: str | None, uri: str | None) -> str | None:
    """The user field a (case-insensitive) attribute path names, IGNORED, or None if unknown."""
    attribute = attribute.lower()
    sub = sub_attribute.lower() if sub_attribute else None
    uri = uri.lower() if uri else None
    if uri in (None, _core):
        field = CORE_PATHS.get((attribute, sub))
        if field:
            return field
        if attribute in IGNORED_CORE:
            return IGNORED
        return None
    if uri == _ent:
        field = ENTERPRISE_PATHS.get((attribute, sub))
        if field:
            return field
        return IGNORED if attribute in IGNORED_ENTERPRISE else None
    if uri.startswith("urn:") and (attribute, sub) in CUSTOM_PATHS:
        # Okta and Entra let an admin name the custom namespace; any extension URN carrying
        # c42OrgName is accepted.
        return CUSTOM_PATHS[(attribute, sub)]
    return None
