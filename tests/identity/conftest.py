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
