import base64
import copy
import json
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from provisioning.models import AuthType
from provisioning.services import create_provider
from synclog.record import Actor

PAYLOADS = Path(__file__).parent / "payloads"
SCIM = "application/scim+json"


def payload(name: str) -> dict:
    """A fresh deep copy of a stored IdP payload (tests/scim/payloads/<idp>/<name>.json)."""
    return copy.deepcopy(json.loads((PAYLOADS / f"{name}.json").read_text()))


class ScimClient:
    """A SCIM client for one provider: paths are relative to its base URL."""

    def __init__(self, issued, auth_header: str):
        self.provider = issued.provider
        self.secret = issued.secret
        self.base = f"/scim/v2/{issued.provider.slug}"
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=auth_header)

    def _url(self, path: str) -> str:
        return self.base + path

    def get(self, path, **extra):
        return self.client.get(self._url(path), **extra)

    def post(self, path, body, content_type=SCIM, **extra):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.generic("POST", self._url(path), data, content_type, **extra)

    def put(self, path, body, content_type=SCIM, **extra):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.generic("PUT", self._url(path), data, content_type, **extra)

    def patch(self, path, body, content_type=SCIM, **extra):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.generic("PATCH", self._url(path), data, content_type, **extra)

    def delete(self, path, **extra):
        return self.client.delete(self._url(path), **extra)


def _make(name: str, auth: str, delay=None) -> ScimClient:
    issued = create_provider(
        name=name, auth_type=auth, actor=Actor.system("tests"), deactivation_delay=delay
    )
    if auth == AuthType.TOKEN:
        header = f"Bearer {issued.secret}"
    else:
        raw = f"{issued.provider.credential_username}:{issued.secret}".encode()
        header = "Basic " + base64.b64encode(raw).decode()
    return ScimClient(issued, header)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Keyset anchors are cached by provider id; rolled-back tests reuse ids, so each test
    starts with an empty cache (in production ids are never reused)."""
    from django.core.cache import cache

    from provisioning.scim import authentication

    # Likewise what this process remembers of providers it authenticated (rolled-back tests
    # reuse slugs): a stale entry would only cost a fallback, but tests count round trips.
    for remembered in (cache, authentication._known, authentication._assumable):
        remembered.clear()
    yield
    for remembered in (cache, authentication._known, authentication._assumable):
        remembered.clear()


@pytest.fixture
def scim(db):
    """An Okta-like provider with an OAuth token."""
    return _make("Okta", AuthType.TOKEN)


@pytest.fixture
def scim_basic(db):
    return _make("PingOne", AuthType.BASIC)


@pytest.fixture
def other_scim(db):
    return _make("Entra ID", AuthType.TOKEN)


@pytest.fixture
def make_scim(db):
    return _make


def new_user(n: int = 1, **extra) -> dict:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": f"user{n}@example.com",
        "externalId": f"ext-{n}",
        "name": {"givenName": "Ada", "familyName": f"Lovelace{n}"},
        "emails": [{"value": f"user{n}@example.com", "type": "work", "primary": True}],
        "active": True,
    }
    body.update(extra)
    return body


# --- Users service helpers ------------------------------------------------------------------

CORE_USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GATEHOUSE_URN = "urn:ietf:params:scim:schemas:extension:gatehouse:2.0:User"
ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def patch_ops(*operations) -> dict:
    """A PatchOp body with the given operations."""
    return {"schemas": [PATCH_URN], "Operations": [dict(op) for op in operations]}


def idp_request(client: ScimClient, name: str):
    """Replay a stored IdP GET (``{"method", "path", "query"}``) against ``client``."""
    from urllib.parse import urlencode

    spec = payload(name)
    assert spec["method"] == "GET"
    return client.get(f"{spec['path']}?{urlencode(spec['query'])}")


def expected_scim_user(client: ScimClient, user, *, groups=None) -> dict:
    """The whole SCIM body Gatehouse must answer for ``user`` (as stored now) at ``client``'s
    provider: what an IdP reads back and diffs against what it pushed."""
    from django.conf import settings

    from identity.models import UserStatus
    from provisioning.models import ProviderUser
    from provisioning.scim.user_rows import etag_of

    user.refresh_from_db()
    link = ProviderUser.objects.get(user=user)
    base = f"{settings.GATEHOUSE_BASE_URL}/scim/v2/{client.provider.slug}"
    body: dict = {
        "schemas": [CORE_USER_URN],
        "id": str(link.scim_id),
    }
    if link.external_id:
        body["externalId"] = link.external_id
    body["userName"] = user.username
    if user.given_name or user.family_name:
        name = {}
        if user.given_name:
            name["givenName"] = user.given_name
        if user.family_name:
            name["familyName"] = user.family_name
        body["name"] = name  # name.formatted is not kept, so not invented either
    for key, value in (
        ("displayName", user.display_name),
        ("title", user.title),
        ("userType", user.user_type),
    ):
        if value:
            body[key] = value
    body["active"] = user.status == UserStatus.ACTIVE
    if user.email:
        body["emails"] = [{"value": user.email, "type": "work", "primary": True}]
    address = {
        k: v
        for k, v in (
            ("locality", user.locality),
            ("region", user.region),
            ("country", user.country),
        )
        if v
    }
    if address:
        body["addresses"] = [{"type": "work", "primary": True, **address}]
    enterprise = {
        k: v
        for k, v in (
            ("employeeNumber", user.employee_number),
            ("department", user.department),
            ("division", user.division),
        )
        if v
    }
    if user.manager_id:
        manager_id = str(ProviderUser.objects.get(user_id=user.manager_id).scim_id)
        # displayName is readOnly and optional (RFC 7643 §4.3): left out.
        enterprise["manager"] = {"value": manager_id, "$ref": f"{base}/Users/{manager_id}"}
    if enterprise:
        body[ENTERPRISE_URN] = enterprise
        body["schemas"].append(ENTERPRISE_URN)  # RFC 7643 §3: the schemas of what is there
    if link.org_attribute:
        body[GATEHOUSE_URN] = {"c42OrgName": link.org_attribute}
        body["schemas"].append(GATEHOUSE_URN)
    body["groups"] = list(groups or [])
    body["meta"] = {
        "resourceType": "User",
        "created": user.created_at.isoformat(),
        "lastModified": user.updated_at.isoformat(),
        "location": f"{base}/Users/{link.scim_id}",
        # The groups listed are part of the version (a membership changes the resource).
        "version": etag_of(link.version, [(g["value"], g["display"]) for g in groups or []]),
    }
    return body


def snapshot() -> dict:
    """Everything a rejected SCIM request must leave untouched: users, links, pending
    deactivations, and the sync-log and audit row counts."""
    from identity.models import PendingDeactivation, User
    from provisioning.models import ProviderUser
    from synclog.models import AuditLogEntry, SyncLogEntry

    return {
        "users": list(User.objects.order_by("pk").values()),
        "links": list(ProviderUser.objects.order_by("pk").values()),
        "pending": list(PendingDeactivation.objects.order_by("pk").values()),
        "sync_rows": SyncLogEntry.objects.count(),
        "audit_rows": AuditLogEntry.objects.count(),
    }


def assert_scim_error(r, status: int, scim_type: str | None = None) -> dict:
    """``r`` is a SCIM error body (RFC 7644 §3.12) with ``status`` and ``scimType``."""
    assert r.status_code == status, r.content
    assert r["Content-Type"].startswith("application/scim+json"), r["Content-Type"]
    body = r.json()
    assert body["schemas"] == [ERROR_URN], body
    assert body["status"] == str(status), body
    assert body.get("scimType") == scim_type, body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


def created(client: ScimClient, body: dict):
    """POST ``body`` and return the stored user."""
    from identity.models import User

    r = client.post("/Users", body)
    assert r.status_code == 201, r.content
    return User.objects.get(provider_link__scim_id=r.json()["id"])
