#!/usr/bin/env python3
"""SCIM load benchmark: bulk-load N users, start the real server, run the shared workload.

    .venv/bin/python bench/scim_load.py --users 10000
    .venv/bin/python bench/scim_load.py --users 100000 \\
        --database-url postgres://postgres@127.0.0.1:5432/gatehouse_bench

Steps, each timed: a fresh database (a SQLite file under a temporary GATEHOUSE_VAR_DIR, or a
PostgreSQL database that this script drops and creates), migrate, one token-auth provider
through ``provisioning.services.create_provider``, users ``user1@example.com`` ..
``userN@example.com`` linked to that provider, the web server on a free port, started as
``manage.py serve`` starts it (granian, 4 x 1 on SQLite, 2 x 4 on PostgreSQL),
``/healthz``, then ``/work/shared/bench/scim_workload.py`` against
``/scim/v2/<provider slug>`` with the provider's bearer token. Its table is printed as it runs.
Options this script does not know (``--workloads a,c``, ``--requests 50``, ...) are passed to
the workload unchanged.

It also times ``externalId eq`` the same way (the workload has no such row), after the
latency rows and before the creates, and with ``--concurrent-creates N`` creates over N
connections at once, after everything else.
A script that prints numbers, never asserts on them (STYLE.md "bench/"). Compare systems
measured in one run, not against another day's numbers.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKLOAD = "/work/shared/bench/scim_workload.py"
BATCH_SIZE = 5000  # rows fetched at a time when reading back user ids


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10000, help="N users to load (10000)")
    parser.add_argument(
        "--database-url",
        default="",
        help="postgres://… of a dedicated bench database, dropped and created again "
        "(its name must contain 'bench'); default: a fresh SQLite file in a temporary dir",
    )
    parser.add_argument("--workload", default=DEFAULT_WORKLOAD, help="the shared workload script")
    parser.add_argument("--json-out", default="", help="passed to the workload: JSON lines out")
    parser.add_argument(
        "--workers", type=int, default=0, help="web server processes (default: as manage.py serve)"
    )
    parser.add_argument(
        "--concurrent-creates",
        type=int,
        default=0,
        metavar="N",
        help="after the workload, creates over N connections at once for 15 s (users/s)",
    )
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="stop after loading, starting the server and checking /healthz and /Users",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary GATEHOUSE_VAR_DIR")
    return parser.parse_known_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate_postgres_database(url: str) -> None:
    """Drop and create the bench database, connected to the server's ``postgres`` database."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if "bench" not in name:
        # This drops the database: refuse anything that does not look like a bench database.
        raise SystemExit(f"refusing to drop database {name!r}: its name must contain 'bench'")
    connect = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "") or None,
        "password": unquote(parts.password or "") or None,
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**{k: v for k, v in connect.items() if v is not None}) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def insert_rows(model, template, varying: list[str], rows) -> None:
    """Insert rows in bulk (COPY, or multi-row INSERT): the ``varying`` columns (attnames) come from
    each row, every other column from ``template``, so a field someone adds later with a
    default still gets it. No per-row model instances: Django's bulk_create spends most of its
    time preparing every field of every instance (100,000 users took ~30 s; this takes a few).
    """
    from django.db import connection

    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    by_attname = {f.attname: f for f in fields}
    constant = [f for f in fields if f.attname not in varying]
    columns = [by_attname[name].column for name in varying] + [f.column for f in constant]
    constant_values = tuple(
        f.get_db_prep_save(f.pre_save(template, add=True), connection) for f in constant
    )
    table = connection.ops.quote_name(model._meta.db_table)
    column_list = ", ".join(connection.ops.quote_name(c) for c in columns)
    rows = [(*row, *constant_values) for row in rows]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY: psycopg quotes client-side, so a huge multi-row INSERT spends seconds
            # just splitting its own placeholders.
            with cursor.cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        # SQLite: multi-row VALUES under its 32,766-parameter limit.
        placeholders = "({})".format(", ".join(["%s"] * len(columns)))
        per_statement = 30000 // len(columns)
        for first in range(0, len(rows), per_statement):
            chunk = rows[first : first + per_statement]
            cursor.execute(
                f"INSERT INTO {table} ({column_list}) VALUES "
                + ", ".join([placeholders] * len(chunk)),
                [value for row in chunk for value in row],
            )


def load_users(n: int):
    """Test data loading, not provisioning: raw inserts, no services, no sync-log rows.

    Services write one user at a time with its history; that is what the workload measures.
    Here we only need N users that a provider sees, fast (100,000 in seconds).
    """
    import uuid

    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from django.utils import timezone

    from identity.models import Organization, User
    from provisioning.models import ProviderUser
    from provisioning.services import create_provider
    from synclog.record import Actor

    issued = create_provider(
        name="Bench", auth_type="token", actor=Actor.system("bench/scim_load.py")
    )
    provider = issued.provider
    now = timezone.now()
    user_template = User(
        organization=Organization.objects.default(),
        # One unusable hash for all: provisioned users sign in at their identity provider.
        password=make_password(None),
        created_at=now,
        updated_at=now,
    )
    link_template = ProviderUser(provider=provider, created_at=now)
    scim_id = ProviderUser._meta.get_field("scim_id")

    started = time.perf_counter()
    with transaction.atomic():
        insert_rows(
            User,
            user_template,
            ["username", "email", "given_name", "family_name", "display_name", "external_id"],
            (
                (
                    f"user{i}@example.com",
                    f"user{i}@example.com",
                    f"First{i}",
                    f"Last{i}",
                    f"First{i} Last{i}",
                    f"ext-{i}",
                )
                for i in range(1, n + 1)
            ),
        )
        # The database is fresh: every user with an external id is one of ours.
        ids = User.objects.exclude(external_id="").values_list("pk", "external_id")
        insert_rows(
            ProviderUser,
            link_template,
            ["user_id", "external_id", "scim_id"],
            (
                (pk, external_id, scim_id.get_db_prep_save(uuid.uuid4(), connection))
                for pk, external_id in ids.iterator(chunk_size=BATCH_SIZE)
            ),
        )
    loaded = time.perf_counter() - started
    # The provider's maintained user count, as provisioning.user_sync keeps it.
    type(provider).objects.filter(pk=provider.pk).update(user_count=n)
    # Fresh planner statistics, as a long-running database would have.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    analyzed = time.perf_counter() - started - loaded
    return issued, loaded, analyzed


def wait_for_health(url: str, server: subprocess.Popen, timeout: float = 60) -> float:
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def measure_external_id_eq(scim_base: str, secret: str, users: int, requests: int = 200):
    """``externalId eq`` (Entra and Okta look users up by it too), which the shared workload
    does not time: as its ``userName eq`` row (one keep-alive connection, median and p95)."""
    import statistics

    import httpx

    value = f"ext-{max(1, users // 2)}"
    headers = {"Authorization": f"Bearer {secret}", "Accept": "application/scim+json"}
    params = {"filter": f'externalId eq "{value}"'}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    latencies, errors = [], 0
    with httpx.Client(headers=headers, limits=limits, timeout=60) as client:
        for _ in range(20):  # every web thread's connection prepares its statements
            client.get(f"{scim_base}/Users", params=params)
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(f"{scim_base}/Users", params=params)
            _ = response.content
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200 or response.json()["totalResults"] != 1
    latencies.sort()
    p95 = latencies[max(0, int(0.95 * len(latencies)) - 1)]
    print(
        f"  c_filter_externalId n={len(latencies)} err={errors} "
        f"median={statistics.median(latencies):.2f} ms p95={p95:.2f} ms",
        flush=True,
    )


def measure_floor(port: int, env: dict, requests: int = 2000) -> None:
    """The web server serving bench/floor.py to the same client: the part of every row
    above that is not Gatehouse (median of a POST with a create-sized body)."""
    import statistics

    import httpx

    from console.management.commands.serve import web_server_command

    command = web_server_command("127.0.0.1", port, 1, access_log=False)
    command[-1] = "floor:app"
    server = subprocess.Popen(
        command, cwd=ROOT / "bench", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        body = b'{"userName": "' + b"x" * 300 + b'"}'
        headers = {"Content-Type": "application/scim+json", "Authorization": "Bearer x"}
        latencies = []
        with httpx.Client(timeout=10) as client:
            deadline = time.perf_counter() + 30
            while True:
                try:
                    client.post(f"http://127.0.0.1:{port}/", content=body, headers=headers)
                    break
                except httpx.TransportError:
                    if time.perf_counter() > deadline:
                        raise
                    time.sleep(0.1)
            for _ in range(requests):
                started = time.perf_counter()
                client.post(f"http://127.0.0.1:{port}/", content=body, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
        latencies = sorted(latencies[requests // 5 :])
        print(
            f"floor      web server + client, no application: median "
            f"{statistics.median(latencies):.2f} ms p95 "
            f"{latencies[int(0.95 * len(latencies)) - 1]:.2f} ms",
            flush=True,
        )
    finally:
        stop(server)


def measure_concurrent_creates(scim_base: str, secret: str, connections: int, seconds: float):
    """Creates over several keep-alive connections at once, as identity providers push on a
    first sync (the shared workload's creates use one connection, one request at a time).
    Runs after the workload: it adds users."""
    import json
    import threading

    import httpx

    headers = {
        "Authorization": f"Bearer {secret}",
        "Content-Type": "application/scim+json",
    }
    counts = [0] * connections
    errors = [0] * connections
    deadline = time.perf_counter() + seconds

    def push(worker: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(headers=headers, limits=limits, timeout=60) as client:
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                name = f"conc{worker}-{n}@example.com"
                body = {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": name,
                    "externalId": f"conc-{worker}-{n}",
                    "name": {"givenName": "Con", "familyName": f"Current{n}"},
                    "emails": [{"value": name, "type": "work", "primary": True}],
                    "active": True,
                }
                response = client.post(f"{scim_base}/Users", content=json.dumps(body))
                if response.status_code == 201:
                    counts[worker] += 1
                else:
                    errors[worker] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=push, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    print(
        f"  d_post_create_x{connections} n={sum(counts)} err={sum(errors)} "
        f"thr={sum(counts) / elapsed:.1f} users/s over {connections} connections "
        f"in {elapsed:.1f}s",
        flush=True,
    )


def main(argv=None) -> int:
    args, workload_args = parse_args(argv)
    # A killed run (timeout, CI) still stops its server and removes its temporary directory.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    var_dir = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = args.database_url or f"sqlite:///{var_dir / 'gatehouse.sqlite3'}"
    system = "gatehouse/postgresql" if database_url.startswith("postgres") else "gatehouse/sqlite"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "GATEHOUSE_VAR_DIR": str(var_dir),
        "GATEHOUSE_BASE_URL": base,  # so provider.base_url is the URL the server answers on
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "console.settings",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    print(f"# {system}  N={args.users}  GATEHOUSE_VAR_DIR={var_dir}", flush=True)

    server = None
    log_path = var_dir / "web.log"
    try:
        if system == "gatehouse/postgresql":
            started = time.perf_counter()
            recreate_postgres_database(database_url)
            print(
                f"database   recreated {urlsplit(database_url).path.lstrip('/')} "
                f"in {time.perf_counter() - started:.1f}s",
                flush=True,
            )

        import django

        django.setup()
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
        measure_floor(free_port(), env)
        from django.core.management import call_command
        from django.db import connections

        from console.management.commands.serve import web_server_command

        started = time.perf_counter()
        call_command("migrate", interactive=False, verbosity=0)
        print(f"migrate    {time.perf_counter() - started:.1f}s", flush=True)

        issued, loaded, analyzed = load_users(args.users)
        print(
            f"load       {args.users} users + provider links in {loaded:.1f}s "
            f"({args.users / loaded:,.0f} users/s); ANALYZE {analyzed:.1f}s",
            flush=True,
        )
        connections.close_all()  # the server gets the database to itself

        with open(log_path, "w") as log:
            server = subprocess.Popen(
                web_server_command("127.0.0.1", port, args.workers, access_log=False),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            ready = wait_for_health(f"{base}/healthz", server)
        except RuntimeError as exc:
            print(f"server     FAILED: {exc}; log {log_path}:", flush=True)
            print(log_path.read_text()[-3000:], flush=True)
            args.keep = True
            return 1
        print(f"server     {base} /healthz 200 after {ready:.1f}s", flush=True)

        import httpx

        scim_base = issued.provider.base_url
        probe = httpx.get(
            f"{scim_base}/Users",
            params={"count": 1},
            headers={"Authorization": f"Bearer {issued.secret}"},
            timeout=60,
        )
        total = probe.json().get("totalResults") if probe.status_code == 200 else None
        print(
            f"probe      GET {scim_base}/Users?count=1 → {probe.status_code} totalResults={total}",
            flush=True,
        )
        if probe.status_code != 200:
            print(
                "           the SCIM service does not answer here yet: no workload run", flush=True
            )
            return 1
        if args.load_only:
            return 0

        command = [
            sys.executable,
            args.workload,
            "--base-url",
            scim_base,
            "--auth",
            f"bearer:{issued.secret}",
            "--users",
            str(args.users),
            "--system",
            system,
        ]
        if args.json_out:
            command += ["--json-out", args.json_out]
        if any(arg.startswith("--workloads") for arg in workload_args):
            returncode = subprocess.run([*command, *workload_args], cwd=ROOT).returncode
            measure_external_id_eq(scim_base, issued.secret, args.users)
            if args.concurrent_creates:
                measure_concurrent_creates(scim_base, issued.secret, args.concurrent_creates, 15)
            return returncode
        # The default workloads in two runs, so externalId eq is timed where its userName eq
        # row is: on a warm server (web workers still booting made it ~1 ms slower), and before
        # the creates (their new rows and autovacuum made it ~0.7 ms slower on PostgreSQL).
        returncode = subprocess.run(
            [*command, "--workloads", "a,b,c,e,f", *workload_args], cwd=ROOT
        ).returncode
        measure_external_id_eq(scim_base, issued.secret, args.users)
        returncode = (
            returncode
            or subprocess.run([*command, "--workloads", "d", *workload_args], cwd=ROOT).returncode
        )
        if args.concurrent_creates:
            measure_concurrent_creates(scim_base, issued.secret, args.concurrent_creates, 15)
        return returncode
    finally:
        if server is not None:
            stop(server)
        if args.keep:
            print(f"kept {var_dir}", flush=True)
        else:
            shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
