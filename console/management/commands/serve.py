"""``python manage.py serve``: what ``make run`` starts.

Migrates, creates the first administrator, then runs the web server (granian) and a Celery
worker with embedded beat as children in one foreground process group. Ctrl-C (or SIGTERM)
stops all of them; if one child dies the others are stopped too, so nothing half-runs.

granian rather than gunicorn: its HTTP/1.1 (Rust, keep-alive) costs about 0.4 ms less per
request than gunicorn's gthread worker, whose request parsing is Python and which hands each
request from its poller thread to a worker thread: a tenth to a fifth of a SCIM request
(docs/benchmarks.md). ``GATEHOUSE_WEB_WORKERS`` processes, each running requests on
``GATEHOUSE_WEB_THREADS`` blocking threads.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


def web_server_command(
    bind: str, port: int, workers: int = 0, *, access_log: bool = True
) -> list[str]:
    """The web server's command line (bench/scim_load.py starts the same one)."""
    return [
        os.path.join(os.path.dirname(sys.executable), "granian"),
        "--interface=wsgi",
        f"--host={bind}",
        f"--port={port}",
        f"--workers={workers or settings.GATEHOUSE_WEB_WORKERS}",
        f"--blocking-threads={settings.GATEHOUSE_WEB_THREADS}",
        # Django's database connections belong to a thread: a thread that ended after its
        # default 30 idle seconds took its connection (SQLite's page cache, PostgreSQL's
        # prepared statements) with it. The longest granian allows.
        "--blocking-threads-idle-timeout=600",
        "--respawn-failed-workers",
        # A worker that has not stopped 10 s after SIGTERM is killed: stopping never hangs
        # (a daemon thread caught mid-import at interpreter exit can block it for good).
        "--workers-kill-timeout=10",
        "--access-log" if access_log else "--no-access-log",
        "console.wsgi:application",
    ]


def _port(text: str) -> int:
    """``--port``: one line naming the problem, no traceback."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise SystemExit(f"Gatehouse configuration error: --port must be 1-65535, got {text!r}")
    return int(text)


class Command(BaseCommand):
    help = "Migrate, ensure an administrator, and run the web server plus a Celery worker+beat."

    def add_arguments(self, parser):
        # Unset, settings.PORT: the PORT variable, checked with the other settings.
        parser.add_argument("--port", type=_port, default=None)
        parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1"))
        parser.add_argument(
            "--web-only",
            action="store_true",
            help="only the web server, in place of this process (containers: migrations and "
            "workers run as their own services)",
        )

    def handle(self, *args, port: int | None, bind: str, web_only: bool = False, **options):
        port = port or settings.PORT
        if web_only:
            command = web_server_command(bind, port)
            os.execv(command[0], command)  # signals go straight to the server
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensure_admin")
        # The one-time sign-in ensure_admin printed must be out before the children start:
        # to a file or a pipe (nohup, systemd, `| tee`) stdout is block-buffered, and it
        # came out only when the server stopped.
        sys.stdout.flush()
        children = {
            "web": web_server_command(bind, port),
            "worker": [
                os.path.join(os.path.dirname(sys.executable), "celery"),
                "--app=console",
                "worker",
                "--beat",  # embedded beat: one process schedules periodic work
                f"--schedule={settings.CELERY_BEAT_SCHEDULE_FILENAME}",
                "--concurrency=2",
                "--loglevel=INFO",
            ],
        }
        procs = {name: subprocess.Popen(cmd) for name, cmd in children.items()}
        self.stdout.write(self.style.SUCCESS(f"Gatehouse console: http://{bind}:{port}/console/"))
        self.stdout.write("Press Ctrl-C to stop the web server and the worker.")
        self.stdout.flush()

        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(p.poll() is None for p in procs.values()):
                time.sleep(0.3)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for proc in procs.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
        dead = [name for name, p in procs.items() if p.returncode not in (0, -15, None)]
        if dead and not stopping:
            raise SystemExit(f"stopped because {', '.join(dead)} exited")
