"""How fast the sweep runs due deactivations: N users blocked with a deactivation already due,
then one ``run_due_deactivations()`` call, timed. Prints numbers; asserts nothing about time.

    .venv/bin/python bench/deactivation_sweep.py                      # SQLite (a scratch file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gatehouse \\
        .venv/bin/python bench/deactivation_sweep.py                  # PostgreSQL

It works on a scratch test database (``test_<name>`` on PostgreSQL, a file in a temporary
directory on SQLite) that it creates and drops, never on the configured database itself.
Target: at least 1,000 deactivations a second on PostgreSQL.
"""

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scratch import bench_provider, bench_users, scratch_database  # noqa: E402 - bench/ is on the path just above


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()

    with scratch_database():
        run(args)


def run(args) -> None:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from identity.deactivation import run_due_deactivations
    from identity.models import PendingDeactivation, User, UserStatus
    from synclog.models import SyncLogEntry

    now = timezone.now()
    provider = bench_provider()
    users = bench_users(provider, args.rows, "leaver", status=UserStatus.BLOCKED, password="!")
    PendingDeactivation.objects.bulk_create(
        [
            PendingDeactivation(
                user=u,
                provider=provider,
                provider_label=provider.name,
                requested_by_kind="provider",
                requested_by=provider.credential_username,
                created_at=now - timedelta(minutes=16),
                due_at=now - timedelta(minutes=1),
            )
            for u in users
        ],
        batch_size=2000,
    )
    batch = args.batch_size or settings.GATEHOUSE_DEACTIVATION_BATCH_SIZE
    started = time.perf_counter()
    result = run_due_deactivations(batch_size=batch)
    elapsed = time.perf_counter() - started
    done = User.objects.filter(status=UserStatus.DEACTIVATED).count()
    logged = SyncLogEntry.objects.filter(change_type="user_deactivated").count()
    print(f"database:      {connection.vendor} ({connection.settings_dict['ENGINE']})")
    print(f"due rows:      {args.rows}  batch size: {batch}")
    print(f"deactivated:   {result.deactivated} (users now deactivated: {done}, "
          f"sync rows: {logged})")  # fmt: skip
    print(f"time:          {elapsed:.2f} s")
    print(f"throughput:    {result.deactivated / elapsed:,.0f} deactivations/s")


if __name__ == "__main__":
    main()
