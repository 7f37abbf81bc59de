import pytest


@pytest.fixture(autouse=True)
def _seeded_catalogue(request, django_db_blocker):
    """Transactional tests flush the database when they end, taking the data migration's
    roles and default organization with it; pytest-django runs them after the others, so
    each one seeds the catalogue again first (idempotent)."""
    marker = request.node.get_closest_marker("django_db")
    transactional = (marker is not None and marker.kwargs.get("transaction")) or any(
        name in request.fixturenames for name in ("transactional_db", "live_server")
    )
    if not transactional:
        return
    from identity.models import Organization, Role
    from identity.seed import seed_catalogue

    request.getfixturevalue("transactional_db")
    with django_db_blocker.unblock():
        seed_catalogue(Role, Organization)


@pytest.fixture
def default_org(db):
    from identity.models import Organization

    return Organization.objects.default()


@pytest.fixture(autouse=True)
def _no_deactivation_nudges_remembered():
    """identity.services remembers, per process, the due-time buckets it already nudged a
    worker for; a test must not find its nudge suppressed by an earlier test's."""
    from identity import services

    services._nudged_buckets.clear()


@pytest.fixture(autouse=True)
def _configured_base_url(settings):
    """Tests compare SCIM URLs with settings.GATEHOUSE_BASE_URL, as a configured deployment
    answers them; tests/scim/test_discovery.py checks the unconfigured default (URLs of the
    host each request came to) on its own."""
    settings.GATEHOUSE_BASE_URL_FROM_REQUEST = False
