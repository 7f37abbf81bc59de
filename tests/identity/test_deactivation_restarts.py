"""The schedule survives restarts: 1,000 deactivations due within seconds, a real Celery worker
and beat, the worker SIGKILLed mid-run and restarted (and, on Redis, the broker restarted):
afterwards every user is deactivated exactly once, none before its due time.

The worker and beat run as subprocesses on the test database (committed data, hence
``transaction=True``) and on a broker of their own: a ``redis-server`` this test starts on a
free port when the suite runs on Redis (the machine's shared Redis is left alone), else a
SQLite broker file in a temporary directory.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from identity.models import DeactivationState, Organization, PendingDeactivation, User, UserStatus
from synclog.models import SyncLogEntry
from tests.identity.conftest import seed_default_organization_and_roles
from tests.identity.factories import ProviderFactory

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
USERS = 1000
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
BROKER_IS_REDIS = settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own, without persistence: a restart loses every message."""

    def __init__(self, port: int):
        self.port, self.proc = port, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    return (
        f"postgres://{user}{password}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


class Celery:
    """A worker and a beat, started and stopped as the test says."""

    def __init__(self, env: dict, var_dir: Path):
        self.env, self.var_dir, self.worker, self.beat = env, var_dir, None, None

    def _spawn(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([CELERY, "--app=console", *args], cwd=ROOT, env=self.env)

    def start_worker(self) -> None:
        self.worker = self._spawn(
            "worker", "--pool=solo", "--concurrency=1", "--without-gossip", "--without-mingle",
            "--loglevel=WARNING",
        )  # fmt: skip

    def start_beat(self) -> None:
        self.beat = self._spawn(
            "beat", f"--schedule={self.var_dir / 'beat-schedule'}", "--loglevel=WARNING"
        )

    def kill_worker(self) -> None:
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(timeout=10)

    def stop(self) -> None:
        for proc in (self.worker, self.beat):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture
def seeded(transactional_db):
    """The default organization and role catalogue. An earlier transactional test's flush
    removes what the data migration seeded (and ``serialized_rollback`` collides with the
    content types that flush recreates), so put it back; the seed is idempotent. Our own
    flush is followed by a reseed too (conftest.py)."""
    from django.apps import apps

    seed_default_organization_and_roles(apps)


@pytest.fixture
def redis_server():
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


def schedule_deactivations(now) -> None:
    """1,000 blocked users, due 3 to 8 seconds from now, spread so the sweeps run for a while."""
    provider = ProviderFactory()
    org = Organization.objects.default()
    users = User.objects.bulk_create(
        User(
            username=f"leaver{i}@example.com",
            organization=org,
            status=UserStatus.BLOCKED,
            password="!",
        )
        for i in range(USERS)
    )
    PendingDeactivation.objects.bulk_create(
        PendingDeactivation(
            user=user,
            provider=provider,
            provider_label=provider.name,
            requested_by_kind="provider",
            requested_by=provider.credential_username,
            created_at=now,
            due_at=now + timedelta(seconds=3) + timedelta(milliseconds=5 * i),
        )
        for i, user in enumerate(users)
    )


def done() -> int:
    return PendingDeactivation.objects.filter(state=DeactivationState.DONE).count()


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({done()} of {USERS} done)")
        time.sleep(0.05)


def assert_each_deactivated_once_and_none_early() -> None:
    assert User.objects.filter(status=UserStatus.DEACTIVATED).count() == USERS
    rows = SyncLogEntry.objects.filter(change_type="user_deactivated")
    assert rows.count() == USERS
    assert rows.values("user_id").distinct().count() == USERS
    due = dict(PendingDeactivation.objects.values_list("user_id", "due_at"))
    early = [r.user_label for r in rows if r.created_at < due[r.user_id]]
    assert early == []
    assert not PendingDeactivation.objects.exclude(state=DeactivationState.DONE).exists()


def run_scenario(tmp_path: Path, broker_url: str, restart_broker=None) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": f"db+sqlite:///{tmp_path / 'results.sqlite3'}",
        "GATEHOUSE_VAR_DIR": str(tmp_path),
        "GATEHOUSE_DEACTIVATION_SWEEP_SECONDS": "1",
        "GATEHOUSE_DEACTIVATION_BATCH_SIZE": "25",
    }
    celery = Celery(env, tmp_path)
    schedule_deactivations(timezone.now())
    try:
        celery.start_beat()
        celery.start_worker()
        wait_for(lambda: done() > 0, 40, "the first deactivations")
        celery.kill_worker()
        killed_at = done()
        assert killed_at < USERS, "the worker finished before it could be killed mid-run"
        if restart_broker:
            restart_broker()
        celery.start_worker()
        wait_for(lambda: done() == USERS, 45, "every deactivation")
        time.sleep(2)  # two more sweeps: nothing may run twice
    finally:
        celery.stop()
    assert_each_deactivated_once_and_none_early()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_deactivations_survive_a_killed_worker_each_once_none_early(tmp_path, seeded):
    if BROKER_IS_REDIS:
        # One scenario per run keeps the suite's integration time near 30 s.
        pytest.skip("on Redis the broker-restart test below runs this scenario and more")
    run_scenario(tmp_path, f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_deactivations_survive_a_killed_worker_and_a_restarted_broker(tmp_path, request, seeded):
    if not BROKER_IS_REDIS:
        pytest.skip(
            "broker restart is tested with Redis only (CELERY_BROKER_URL is not redis://): the "
            "test restarts a redis-server of its own; the embedded SQLite broker is a file"
        )
    redis_server = request.getfixturevalue("redis_server")

    def restart_broker():
        redis_server.stop()  # every queued message is lost: the database must not care
        redis_server.start()

    run_scenario(tmp_path, redis_server.url, restart_broker)
