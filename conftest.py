import pytest


@pytest.fixture
def default_org(db):
    from identity.models import Organization

    return Organization.objects.default()
