"""A wave of deprovisions (PRODUCT.md "Deprovisioning"): one provider with N users, then W of
them deprovisioned one after another, as an IdP pushing ``active: false`` for a departing
team does. Past ``GATEHOUSE_GUARD_MIN`` deprovisions in the hour each one also works out the
guard's threshold; this prints what a deprovision costs before that point and deep into the
wave. Prints numbers; asserts nothing about time.

    .venv/bin/python bench/deprovision_wave.py --users 100000 --wave 2000      # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gatehouse \\
        .venv/bin/python bench/deprovision_wave.py --users 100000 --wave 2000  # PostgreSQL

It works on a scratch test database that it creates and drops (bench/scratch.py).
"""

import argparse
import statistics
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
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--wave", type=int, default=2_000, help="deprovisions, one by one")
    args = parser.parse_args()
    with scratch_database():
        run(args)


def run(args) -> None:
    from django.conf import settings
    from django.db import connection, transaction

    from identity import services
    from identity.models import DeprovisionGuard, User
    from synclog.models import ActorKind
    from synclog.record import Actor

    provider = bench_provider(user_count=args.users)  # as provisioning.user_sync keeps it
    users = bench_users(provider, args.users, "u")
    actor = Actor(
        kind=ActorKind.PROVIDER,
        label=provider.credential_username,
        provider_id=provider.pk,
        provider_label=provider.name,
        request_id="bench",
    )
    delay = timedelta(minutes=15)
    timings = []
    for user in users[: args.wave]:
        started = time.perf_counter()
        with transaction.atomic():  # one SCIM request's transaction
            locked = User.objects.select_for_update().get(pk=user.pk)
            services.deprovision(locked, actor=actor, delay=delay, locked=True)
        timings.append((time.perf_counter() - started) * 1000)

    floor = settings.GATEHOUSE_GUARD_MIN
    print(f"database:    {connection.vendor}")
    print(f"users:       {args.users:,}  wave: {args.wave:,}  guard minimum: {floor}")
    for label, part in (
        (f"1-{min(floor, args.wave)} (below the minimum)", timings[:floor]),
        (f"{floor + 1}-{floor + 200}", timings[floor : floor + 200]),
        (f"last 200 (up to {args.wave})", timings[-200:] if args.wave > floor + 200 else []),
    ):
        if part:
            print(
                f"deprovisions {label}: median {statistics.median(part):.2f} ms, "
                f"p95 {sorted(part)[int(0.95 * len(part)) - 1]:.2f} ms"
            )
    print(f"guard tripped: {DeprovisionGuard.objects.exists()}")


if __name__ == "__main__":
    main()
