"""What a big group costs: one group of N members pushed in one POST, then the membership
changes identity providers send a few at a time (Entra's and Okta's PATCH shapes), and reads
with and without members. Prints median ms per request; asserts nothing about time.

    .venv/bin/python bench/group_membership.py --members 10000                 # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gatehouse \\
        .venv/bin/python bench/group_membership.py --members 10000             # PostgreSQL

Requests go through the WSGI application the web server serves (``console.wsgi``) in this
process, with the provider's bearer token: no HTTP, so the numbers are the application's
own (add the web server's floor, ``bench/floor.py``, for what a client sees). It works on a
scratch test database (``test_<name>`` on PostgreSQL, a file in a temporary directory on
SQLite) that it creates and drops, never on the configured database itself. Users are loaded
as ``bench/scim_load.py`` loads them.

A PATCH of a few members must cost the same in a group of 100 as of 100,000. A group of more
than 1,000 members answers such a PATCH 204 (RFC 7644 §3.5.2 allows it); a request with
``excludedAttributes=members`` gets 200 with the group without its members.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scratch import scratch_database  # noqa: E402 - bench/ is on the path just above

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20, help="per row (default 20)")
    args = parser.parse_args()

    with scratch_database():
        run(args)


def run(args) -> None:
    import scim_load
    from django.db import connection

    from console.wsgi import application
    from provisioning.models import ProviderUser

    spare = args.requests
    issued, _, _ = scim_load.load_users(args.members + spare)
    slug = issued.provider.slug
    ids = [str(s) for s in ProviderUser.objects.order_by("id").values_list("scim_id", flat=True)]
    members, outsiders = ids[: args.members], ids[args.members :]

    def call(method: str, path: str, body=None, query: str = "") -> tuple[str, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": f"/scim/v2/{slug}{path}",
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "CONTENT_LENGTH": str(len(data)),
            "CONTENT_TYPE": "application/scim+json",
            "HTTP_AUTHORIZATION": f"Bearer {issued.secret}",
        }
        status = []
        body_out = b"".join(application(environ, lambda s, h, *a: status.append(s)))
        return status[0], body_out

    def row(label: str, request, n: int = args.requests) -> None:
        times, sizes, statuses = [], [], set()
        for i in range(n):
            started = time.perf_counter()
            status, out = request(i)
            times.append((time.perf_counter() - started) * 1000)
            sizes.append(len(out))
            statuses.add(status.split()[0])
        print(
            f"{label:58s} n={n:<3d} status={','.join(sorted(statuses))} "
            f"median={statistics.median(times):9.2f} ms  "
            f"answer={statistics.median(sizes):>9,.0f} B",
            flush=True,
        )

    system = connection.vendor
    print(f"# gatehouse/{system}  group of {args.members} members", flush=True)
    started = time.perf_counter()
    status, out = call(
        "POST",
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Everyone",
            "members": [{"value": m} for m in members],
        },
    )
    print(
        f"{'POST /Groups with every member (Okta push)':58s} n=1   status={status.split()[0]} "
        f"{(time.perf_counter() - started) * 1000:9.0f} ms",
        flush=True,
    )
    group = f"/Groups/{json.loads(out)['id']}"

    def patch(*operations) -> dict:
        return {"schemas": [PATCH_OP], "Operations": list(operations)}

    def entra_add(i):
        value = [{"value": outsiders[i]}]
        return call("PATCH", group, patch({"op": "Add", "path": "members", "value": value}))

    def entra_remove(i):
        value = [{"value": outsiders[i]}]
        return call("PATCH", group, patch({"op": "Remove", "path": "members", "value": value}))

    def okta_remove(i, query=""):
        path = f'members[value eq "{members[i]}"]'
        return call("PATCH", group, patch({"op": "remove", "path": path}), query)

    def okta_add(i, query=""):
        value = [{"value": members[i]}]
        return call("PATCH", group, patch({"op": "add", "path": "members", "value": value}), query)

    row("PATCH add one member (Entra)", entra_add)
    row("PATCH remove one member (Entra)", entra_remove)
    row(
        "PATCH remove one member (Okta), excludedAttributes=members",
        lambda i: okta_remove(i, "excludedAttributes=members"),
    )
    row(
        "PATCH add one member (Okta), excludedAttributes=members",
        lambda i: okta_add(i, "excludedAttributes=members"),
    )
    row(
        "GET the group, excludedAttributes=members",
        lambda i: call("GET", group, query="excludedAttributes=members"),
    )
    row("GET the group with its members", lambda i: call("GET", group), n=min(args.requests, 5))
    row(
        'GET /Groups?filter=displayName eq "Everyone" (Entra)',
        lambda i: call(
            "GET",
            "/Groups",
            query="filter=displayName+eq+%22Everyone%22&excludedAttributes=members",
        ),
    )


if __name__ == "__main__":
    main()
