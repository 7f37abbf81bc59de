"""What the first requests of a web process would otherwise load inside themselves.

Measured on a fresh granian worker (SQLite, embedded broker): its first SCIM request took
0.18 s against 2 ms for the next (Django imports the URLconf, and with it DRF and every
view, on the first request), and its first deprovision 0.53 s against 6 ms (the
deactivation nudge imports kombu's broker transport and, on the embedded broker,
SQLAlchemy, maps its tables and declares the queue). A web process now does both as it
starts: the URLconf at once, the broker in a background thread that gives up quietly when
the broker is not there (the first nudge connects then, and a nudge never fails a request:
identity.services._send_eta_message).
"""

from __future__ import annotations

import logging
import threading

from django.urls import Resolver404, get_resolver

logger = logging.getLogger("gatehouse.web")


def start() -> None:
    resolver = get_resolver()
    for path in ("/scim/v2/-/Users", "/console/"):  # imports every view, compiles the patterns
        try:
            resolver.resolve(path)
        except Resolver404:  # pragma: no cover - both paths exist
            pass
    from console.celery import app

    # The transport's modules (kombu's, SQLAlchemy for the embedded broker) are imported here,
    # not in the thread: a daemon thread caught mid-import when the process exits can hang it.
    with app.connection_for_write() as connection:
        connection.transport  # noqa: B018 - creating it imports, it does not connect
    threading.Thread(target=open_broker, name="broker-warm-up", daemon=True).start()


def open_broker(app=None) -> bool:
    """Connect the pooled producer the first nudge will use and declare its queue."""
    if app is None:
        from console.celery import app
    try:
        with app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=1, interval_start=0.5)
            producer.maybe_declare(app.amqp.queues[app.conf.task_default_queue])
        return True
    except Exception as exc:  # the broker may start after the web server
        logger.info("broker not reachable at start (%s); the first nudge will connect", exc)
        return False
