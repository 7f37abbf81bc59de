"""``manage.py serve`` (what ``make run`` starts) on a fresh data directory, as a user's first
run: it migrates, prints the first administrator, serves the console and SCIM over HTTP with
keep-alive, and stops every child on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration  # a real web server and a real Celery worker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(line) for line in out.stdout.split()]


def _group_gone(pgid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def served(tmp_path, request):
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL")
    }  # the defaults of a fresh machine: SQLite and the SQLite broker, under the data dir
    env.update(
        GATEHOUSE_VAR_DIR=str(tmp_path),
        GATEHOUSE_BASE_URL=f"http://127.0.0.1:{port}",
        ALLOWED_HOSTS="127.0.0.1",
    )
    log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115 - read after the process ends
    extra = getattr(request, "param", [])
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), *extra],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"serve did not come up:\n{log.read()[-3000:]}")
        time.sleep(0.2)
    try:
        yield proc, base, env, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_serve_runs_the_console_and_scim_and_stops_cleanly(served):
    proc, base, env, log = served
    created = subprocess.run(
        [sys.executable, "manage.py", "scim_provider", "create", "--name", "Okta", "--auth",
         "token", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    issued = json.loads(created.stdout)
    assert issued["base_url"].startswith(base)

    with httpx.Client(headers={"Authorization": f"Bearer {issued['secret']}"}) as client:
        assert client.get(f"{base}/console/").status_code in (200, 302)
        made = client.post(
            f"{issued['base_url']}/Users",
            content=json.dumps(
                {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "served@example.com",
                    "active": True,
                }
            ),
            headers={"Content-Type": "application/scim+json"},
        )
        assert made.status_code == 201, made.text
        assert made.headers["Content-Type"] == "application/scim+json"
        found = client.get(
            f"{issued['base_url']}/Users",
            params={"filter": 'userName eq "served@example.com"'},
        )
        assert found.json()["totalResults"] == 1
        assert found.json()["Resources"][0]["id"] == made.json()["id"]

    assert len(_children(proc.pid)) == 2  # the web server and the worker
    # The one-time sign-in is in the log while serve runs (its stdout is a file here, as
    # under nohup or systemd: it came out only when serve stopped).
    log.seek(0)
    output = log.read()
    assert "This password is shown only once" in output
    assert "Gatehouse console:" in output
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    # Nothing of it is left: web server, its worker processes, Celery and its pool.
    assert _group_gone(proc.pid), "processes of serve still run after it stopped"


def test_a_bad_port_stops_serve_with_one_line(tmp_path):
    env = {**os.environ, "GATEHOUSE_VAR_DIR": str(tmp_path), "PORT": "abc"}
    result = subprocess.run(
        [sys.executable, "manage.py", "serve", "--web-only"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Gatehouse configuration error: PORT must be a whole number, got 'abc'"
    ]


@pytest.mark.parametrize("served", [["--web-only"]], indirect=True)
def test_serve_web_only_runs_just_the_web_server_in_its_place(served):
    proc, base, env, log = served  # no migrations here: containers run them as a service
    assert httpx.get(f"{base}/console/login/").status_code == 200
    assert "granian" in Path(f"/proc/{proc.pid}/cmdline").read_text()  # exec'd in place
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert _group_gone(proc.pid)
