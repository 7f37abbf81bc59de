"""RFC 7643 §5–7 discovery documents: ServiceProviderConfig, ResourceTypes, Schemas."""

from __future__ import annotations

from django.conf import settings

from provisioning.models import AuthType, Provider

from .schema import CORE_GROUP, CORE_USER, ENTERPRISE_USER, GATEHOUSE_USER, ORG_ATTRIBUTE

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def service_provider_config(provider: Provider) -> dict:
    if provider.auth_type == AuthType.BASIC:
        scheme = {
            "type": "httpbasic",
            "name": "HTTP Basic",
            "description": "The provider's API credentials (username and secret).",
            "primary": True,
        }
    else:
        scheme = {
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The provider's OAuth token, sent as 'Authorization: Bearer'.",
            "primary": True,
        }
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": f"{settings.GATEHOUSE_BASE_URL}/console/",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": settings.GATEHOUSE_SCIM_MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [scheme],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{provider.base_url}/ServiceProviderConfig",
        },
    }


def resource_types(provider: Provider) -> list[dict]:
    base = provider.base_url
    return [
        {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "A person provisioned by this identity provider.",
            "schema": CORE_USER,
            "schemaExtensions": [
                {"schema": ENTERPRISE_USER, "required": False},
                {"schema": GATEHOUSE_USER, "required": False},
                *(
                    [{"schema": provider.org_attribute_schema, "required": False}]
                    if provider.org_attribute_schema
                    else []
                ),
            ],
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/User"},
        },
        {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "A group pushed by this identity provider.",
            "schema": CORE_GROUP,
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/Group"},
        },
    ]


def _attr(name, type_="string", *, required=False, multi=False, mutability="readWrite",
          returned="default", uniqueness="none", case_exact=False, sub=None, description="",
          reference_types=None, canonical=None):  # fmt: skip
    attribute = {
        "name": name,
        "type": type_,
        "multiValued": multi,
        "description": description or name,
        "required": required,
        "mutability": mutability,
        "returned": returned,
    }
    if type_ in ("string", "reference", "binary"):
        attribute["caseExact"] = case_exact
        attribute["uniqueness"] = uniqueness
    if sub:
        attribute["subAttributes"] = sub
    if reference_types:
        attribute["referenceTypes"] = reference_types
    if canonical:
        attribute["canonicalValues"] = canonical
    return attribute


def _schemas() -> list[dict]:
    user_attributes = [
        _attr("userName", required=True, uniqueness="server",
              description="Unique identifier; an email address, compared case-insensitively."),
        _attr("name", "complex", sub=[
            # Only what is kept is described: name.formatted (Entra maps it) is accepted and
            # not kept, as phoneNumbers are, and a client reading this sends neither.
            _attr("familyName"),
            _attr("givenName")]),
        _attr("displayName"),
        _attr("title"),
        _attr("userType", description="Employee type."),
        # Required: a user is always active or not, and never unassigned (a remove would
        # read as active and unblock the user: 400). Absent on create, it is true.
        _attr("active", "boolean", required=True,
              description="false blocks the user and schedules deactivation."),
        _attr("emails", "complex", multi=True, sub=[
            _attr("value"), _attr("type", canonical=["work", "home", "other"]),
            _attr("primary", "boolean")]),
        _attr("addresses", "complex", multi=True, sub=[
            _attr("type", canonical=["work", "home", "other"]), _attr("locality"),
            _attr("region"), _attr("country", description="ISO 3166-1 alpha-2 code."),
            _attr("primary", "boolean")]),
        _attr("groups", "complex", multi=True, mutability="readOnly", sub=[
            _attr("value", mutability="readOnly"),
            _attr("$ref", "reference", mutability="readOnly", reference_types=["Group"]),
            _attr("display", mutability="readOnly"),
            _attr("type", mutability="readOnly", canonical=["direct", "indirect"])]),
    ]  # fmt: skip
    enterprise_attributes = [
        _attr("employeeNumber"),
        _attr("department"),
        _attr("division"),
        _attr("manager", "complex", sub=[
            _attr("value", description="The manager's id; must be provisioned first."),
            _attr("$ref", "reference", reference_types=["User"])]),
    ]  # fmt: skip
    group_attributes = [
        _attr("displayName", required=True),
        _attr("members", "complex", multi=True, sub=[
            _attr("value", mutability="immutable"),
            _attr("$ref", "reference", mutability="immutable", reference_types=["User"]),
            _attr("display", mutability="readOnly"),
            # Members are users: a group nested in a group is refused.
            _attr("type", mutability="immutable", canonical=["User"])]),
    ]  # fmt: skip
    return [
        {"id": CORE_USER, "name": "User", "description": "User Account",
         "attributes": user_attributes},
        {"id": ENTERPRISE_USER, "name": "EnterpriseUser", "description": "Enterprise User",
         "attributes": enterprise_attributes},
        {"id": GATEHOUSE_USER, "name": "GatehouseUser",
         "description": "Organization attribute for the attribute organization mapping.",
         "attributes": [_attr(ORG_ATTRIBUTE, description="Organization name.")]},
        {"id": CORE_GROUP, "name": "Group", "description": "Group",
         "attributes": group_attributes},
    ]  # fmt: skip


def schemas(provider: Provider) -> list[dict]:
    found = _schemas()
    if provider.org_attribute_schema:
        # The provider's own namespace, where answers carry its organization attribute
        # (Provider.org_attribute_schema): Gatehouse keeps only that attribute of it.
        found.append(
            {"id": provider.org_attribute_schema, "name": "ProviderUser",
             "description": "This provider's own extension: Gatehouse keeps its organization "
                            "attribute and ignores the rest.",
             "attributes": [_attr(ORG_ATTRIBUTE, description="Organization name.")]}
        )  # fmt: skip
    return [
        {
            "schemas": [SCHEMA_SCHEMA],
            **schema,
            "meta": {
                "resourceType": "Schema",
                "location": f"{provider.base_url}/Schemas/{schema['id']}",
            },
        }
        for schema in found
    ]
