"""Django's PostgreSQL backend with a health check that costs no round trip.

``CONN_HEALTH_CHECKS`` makes Django check a reused connection at the start of every request,
and its check is a ``SELECT 1``: one more round trip on every SCIM request (0.2-0.3 ms here,
as much as a whole ``userName eq`` lookup). A server that went away (restart, terminated
backend, failover) closes its end, which leaves the idle socket readable (an error message,
then EOF); a healthy idle connection has nothing to read. So: poll the socket without
waiting, and only when something is there (or the poll fails), or the connection is not idle
(a pipeline or a transaction left open), fall back to Django's query.
"""

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed or getattr(connection, "broken", False):
            return False
        if connection.pgconn.pipeline_status or connection.info.transaction_status:
            # Left mid-pipeline or inside a transaction by a request that failed in a way
            # nothing cleaned up: the socket may look idle, so ask the server (Django's check,
            # which closes the connection when it fails).
            return super().is_usable()
        try:
            poller = select.poll()
            poller.register(connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
            if not poller.poll(0):
                return True  # nothing arrived while idle: the server still holds it open
        except (OSError, ValueError):
            pass
        return super().is_usable()
