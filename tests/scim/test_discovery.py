"""RFC 7643 §5–7 discovery: ServiceProviderConfig, ResourceTypes, Schemas."""

import pytest
from django.conf import settings

from tests.scim.conftest import (
    CORE_USER_URN,
    ENTERPRISE_URN,
    GATEHOUSE_URN,
    LIST_URN,
    assert_scim_error,
    new_user,
)

pytestmark = pytest.mark.django_db

SPC_URN = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_URN = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"


def base_url(client) -> str:
    return f"{settings.GATEHOUSE_BASE_URL}/scim/v2/{client.provider.slug}"


def test_service_provider_config_for_a_bearer_provider(scim):
    r = scim.get("/ServiceProviderConfig")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["schemas"] == [SPC_URN]
    assert body["patch"] == {"supported": True}
    assert body["bulk"]["supported"] is False
    assert body["filter"] == {"supported": True, "maxResults": settings.GATEHOUSE_SCIM_MAX_RESULTS}
    assert body["changePassword"] == {"supported": False}
    assert body["sort"] == {"supported": True}
    assert body["etag"] == {"supported": True}
    assert [s["type"] for s in body["authenticationSchemes"]] == ["oauthbearertoken"]
    assert body["meta"] == {
        "resourceType": "ServiceProviderConfig",
        "location": f"{base_url(scim)}/ServiceProviderConfig",
    }


def test_service_provider_config_for_a_basic_provider(scim_basic):
    body = scim_basic.get("/ServiceProviderConfig").json()
    assert [s["type"] for s in body["authenticationSchemes"]] == ["httpbasic"]


def test_service_provider_config_needs_credentials(scim):
    scim.client.credentials()
    assert_scim_error(scim.get("/ServiceProviderConfig"), 401)


def test_resource_types_list_user_and_group(scim):
    r = scim.get("/ResourceTypes")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["schemas"] == [LIST_URN]
    assert body["totalResults"] == 2
    by_id = {t["id"]: t for t in body["Resources"]}
    user = by_id["User"]
    assert user["schemas"] == [RESOURCE_TYPE_URN]
    assert (user["endpoint"], user["schema"]) == ("/Users", CORE_USER_URN)
    assert user["schemaExtensions"] == [
        {"schema": ENTERPRISE_URN, "required": False},
        {"schema": GATEHOUSE_URN, "required": False},
    ]
    assert user["meta"]["location"] == f"{base_url(scim)}/ResourceTypes/User"
    assert (by_id["Group"]["endpoint"], by_id["Group"]["schema"]) == ("/Groups", GROUP_URN)


def test_one_resource_type_and_unknown_is_404(scim):
    assert scim.get("/ResourceTypes/User").json()["id"] == "User"
    assert_scim_error(scim.get("/ResourceTypes/Widget"), 404)


def test_schemas_describe_user_enterprise_custom_and_group(scim):
    body = scim.get("/Schemas").json()
    assert body["schemas"] == [LIST_URN]
    ids = [s["id"] for s in body["Resources"]]
    assert ids == [CORE_USER_URN, ENTERPRISE_URN, GATEHOUSE_URN, GROUP_URN]
    for schema in body["Resources"]:
        assert schema["schemas"] == [SCHEMA_URN]
        assert schema["meta"] == {
            "resourceType": "Schema",
            "location": f"{base_url(scim)}/Schemas/{schema['id']}",
        }
        for attribute in schema["attributes"]:
            assert {"name", "type", "multiValued", "required", "mutability", "returned"} <= set(
                attribute
            )


def test_user_schema_marks_username_required_and_unique(scim):
    r = scim.get(f"/Schemas/{CORE_USER_URN}")
    assert r.status_code == 200, r.content
    attributes = {a["name"]: a for a in r.json()["attributes"]}
    assert attributes["userName"]["required"] is True
    assert attributes["userName"]["uniqueness"] == "server"
    assert attributes["userName"]["caseExact"] is False
    assert {"name", "emails", "addresses", "active", "title", "displayName"} <= set(attributes)


def test_enterprise_and_custom_schemas_name_their_attributes(scim):
    enterprise = scim.get(f"/Schemas/{ENTERPRISE_URN}").json()
    assert {a["name"] for a in enterprise["attributes"]} == {
        "employeeNumber",
        "department",
        "division",
        "manager",
    }
    custom = scim.get(f"/Schemas/{GATEHOUSE_URN.upper()}").json()
    assert [a["name"] for a in custom["attributes"]] == ["c42OrgName"]


def test_unknown_schema_is_404(scim):
    assert_scim_error(scim.get("/Schemas/urn:example:nope"), 404)


def test_unknown_endpoints_under_a_base_url_answer_a_scim_404(scim):
    for path in ("/Nope", "/Users/a/b"):
        r = scim.get(path)
        assert r.status_code == 404, r.content
        assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    # The base URL itself is the server root: a query (test_groups.py), a write a SCIM 405.
    r = scim.client.delete(scim.base)
    assert r.status_code == 405, r.content
    assert r.json()["status"] == "405"


@pytest.mark.parametrize(
    "path",
    ["/scim", "/scim/", "/scim/v2", "/scim/v2/", "/scim/v1/okta/Users", "/scim/v2/a%20/Users",
     "/scim/v2/a.b/Users", "/scim/v2/%C3%A9/Users", "/scim/v2/okta/Users%0a",
     "/scim/v2/okta/.search%0a"],
)  # fmt: skip
def test_no_path_under_scim_answers_an_html_page(scim, path):
    r = scim.client.get(path)
    assert (r.status_code, r["Content-Type"]) == (404, "application/scim+json"), r.content
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert r.json()["status"] == "404"


def test_outside_scim_a_404_is_django_s_page(client):
    assert client.get("/nope")["Content-Type"].startswith("text/html")


def test_me_and_bulk_are_501_not_implemented(scim):
    # RFC 7644 §3.11 (/Me) and §3.12; ServiceProviderConfig says bulk is not supported.
    for method, path in (("get", "/Me"), ("post", "/Bulk"), ("patch", "/Me/"), ("get", "/Me/x")):
        r = getattr(scim, method)(path, {}) if method != "get" else scim.get(path)
        assert r.status_code == 501, (path, r.content)
        assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert r.json()["status"] == "501"


def test_unconfigured_base_url_follows_the_host_and_scheme_each_request_came_to(scim, settings):
    # A first run (no GATEHOUSE_BASE_URL) reached as http://127.0.0.1:8000 must not send
    # clients to localhost; behind a TLS proxy, X-Forwarded-Proto names the scheme.
    settings.GATEHOUSE_BASE_URL_FROM_REQUEST = True
    base = f"/scim/v2/{scim.provider.slug}"
    r = scim.post("/Users", new_user(1), HTTP_HOST="127.0.0.1:8000")
    assert r.status_code == 201, r.content
    uid = r.json()["id"]
    assert r["Location"] == f"http://127.0.0.1:8000{base}/Users/{uid}"
    assert r.json()["meta"]["location"] == r["Location"]
    r = scim.get(f"/Users/{uid}", HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https")
    assert r.json()["meta"]["location"] == f"https://localhost{base}/Users/{uid}"
    r = scim.get("/ServiceProviderConfig", HTTP_HOST="127.0.0.1:8000")
    assert r.json()["meta"]["location"] == f"http://127.0.0.1:8000{base}/ServiceProviderConfig"
    r = scim.get("/Users", HTTP_HOST="evil.example")  # not in ALLOWED_HOSTS
    assert r.status_code == 400


def test_the_schemas_say_what_the_service_does(scim):
    schemas = {s["id"]: s for s in scim.get("/Schemas").json()["Resources"]}
    user = {
        a["name"]: a for a in schemas["urn:ietf:params:scim:schemas:core:2.0:User"]["attributes"]
    }
    # Never unassigned: a remove is a 400 (it would unblock); a POST without it is active.
    assert user["active"]["required"] is True
    # Accepted (Entra sends it) and not kept: not described, so a validator reading the
    # schema does not expect it back.
    assert [a["name"] for a in user["name"]["subAttributes"]] == ["familyName", "givenName"]
    group = schemas["urn:ietf:params:scim:schemas:core:2.0:Group"]["attributes"]
    members = next(a for a in group if a["name"] == "members")
    member_type = next(a for a in members["subAttributes"] if a["name"] == "type")
    assert member_type["canonicalValues"] == ["User"]  # a group as a member is refused


def test_a_filter_on_a_discovery_endpoint_is_403(scim):
    # RFC 7644 §4: a filter there SHOULD be a 403; other query parameters are ignored.
    for path in ("/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/ResourceTypes/User"):
        r = scim.get(path, data={"Filter": 'id eq "User"'})
        assert r.status_code == 403, (path, r.content)
        assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert scim.get(path, data={"count": "1", "attributes": "id"}).status_code == 200
        assert scim.get(path, data={"filter": " "}).status_code == 200  # no filter at all
