from datetime import UTC, datetime

import pytest

from tests.identity.factories import ProviderFactory

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock(time_machine):
    """Frozen at START; tests move it with ``clock.shift(...)``."""
    time_machine.move_to(START, tick=False)
    return time_machine


@pytest.fixture
def provider(db):
    from datetime import timedelta

    return ProviderFactory(deactivation_delay=timedelta(minutes=15))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After a transactional test of ours has been torn down (its flush empties every table),
    put back what the data migration seeded, so the tests after it find the default
    organization. A fixture cannot: the flush runs after every fixture's teardown."""
    yield
    if nextitem is None:
        # The last test of the run: its teardown also tore the test database down, and no
        # test comes after it to need the seed.
        return
    marker = item.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        return
    from django.apps import apps
    from pytest_django.plugin import blocking_manager_key

    with item.config.stash[blocking_manager_key].unblock():
        seed_default_organization_and_roles(apps)


def seed_default_organization_and_roles(apps) -> None:
    from importlib import import_module

    migration = import_module("identity.migrations.0002_seed_roles_and_default_organization")
    migration.seed(apps, None)
