"""A task sent through the configured broker (the embedded SQLite one by default, Redis in CI)
is executed by a real Celery worker process, not ``task_always_eager``."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from console.tasks import ping

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def celery_worker_process():
    celery = Path(sys.executable).with_name("celery")
    proc = subprocess.Popen(
        [
            str(celery),
            "--app=console",
            "worker",
            "--concurrency=1",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--pool=solo",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.integration
def test_task_runs_on_a_real_worker_through_the_broker(celery_worker_process):
    from django.conf import settings

    assert not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False)
    assert ping.delay().get(timeout=90) == "pong"
