import pytest

from tests.scim.conftest import new_user

pytestmark = pytest.mark.django_db


def test_create_get_list_patch_delete(scim):
    r = scim.post("/Users", new_user(1))
    assert r.status_code == 201, r.content
    body = r.json()
    uid = body["id"]
    assert body["userName"] == "user1@example.com"
    r = scim.get(f"/Users/{uid}")
    assert r.status_code == 200, r.content
    r = scim.get('/Users?filter=userName eq "USER1@example.com"')
    assert r.status_code == 200, r.content
    assert r.json()["totalResults"] == 1
    r = scim.patch(
        f"/Users/{uid}",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "title", "value": "CTO"}],
        },
    )
    assert r.status_code == 200, r.content
    assert r.json()["title"] == "CTO"
    r = scim.delete(f"/Users/{uid}")
    assert r.status_code == 204, r.content
    assert scim.get(f"/Users/{uid}").status_code == 404
