"""A scratch database for the in-process benchmarks (``deactivation_sweep.py``,
``deprovision_wave.py``, ``group_membership.py``), and their provider and users: Django set
up on a temporary ``GATEHOUSE_VAR_DIR`` (unless one is set), then a test database created
and, on the way out, dropped: ``test_<name>`` on PostgreSQL, a file in that directory on
SQLite. Never the configured database itself."""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def scratch_database():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("GATEHOUSE_VAR_DIR", tempfile.mkdtemp(prefix="gatehouse-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    import django

    django.setup()
    from django.db import connection

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield connection
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def bench_provider(**fields):
    """A provider for an in-process benchmark: Basic auth, no usable secret (nothing here
    authenticates)."""
    from provisioning.models import Provider

    return Provider.objects.create(
        name="Bench IdP",
        slug="bench",
        auth_type="basic",
        credential_username="bench_1@gatehouse.example.com",
        secret_digest="0" * 64,
        **fields,
    )


def bench_users(provider, count: int, prefix: str, **fields) -> list:
    """``count`` users ``<prefix><i>@example.com`` in the default organization, each linked to
    ``provider`` as a SCIM create leaves it, written in bulk."""
    from identity.models import Organization, User
    from provisioning.models import ProviderUser

    org = Organization.objects.default()
    users = User.objects.bulk_create(
        [
            User(
                username=f"{prefix}{i}@example.com",
                email=f"{prefix}{i}@example.com",
                organization=org,
                **fields,
            )
            for i in range(count)
        ],
        batch_size=5000,
    )
    ProviderUser.objects.bulk_create(
        [ProviderUser(provider=provider, user=user) for user in users], batch_size=5000
    )
    return users
