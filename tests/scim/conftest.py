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
