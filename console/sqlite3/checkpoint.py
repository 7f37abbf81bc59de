"""SQLite WAL checkpoints off the request path, for the web server's processes.

In WAL mode every commit appends its pages to the ``-wal`` file, and by default the commit
that takes the log past 1,000 pages copies them all back into the database file and syncs
it: a SCIM create writes about 30 pages, so every ~35th create paid several milliseconds
for everyone's pages (about 0.2-0.4 ms a create on average, and most of its p95).

A web process instead starts one daemon thread that runs ``PRAGMA wal_checkpoint(PASSIVE)``
on its own connection ten times a second. PASSIVE never waits for readers or writers (WAL
lets them run beside it), and Python's sqlite3 releases the GIL while SQLite works, so the
copying and syncing happen beside requests rather than inside one. Request connections of
such a process raise their automatic checkpoint to ``AUTOCHECKPOINT_PAGES``: it only comes
into play if this thread falls behind or stops. Other processes (the Celery worker,
commands) keep SQLite's default.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

logger = logging.getLogger("gatehouse.sqlite")

AUTOCHECKPOINT_PAGES = 10_000  # ~40 MB of log before a request would checkpoint itself
# Creates back to back write ~10,000 pages a second. The log starts over only when a write
# begins with every page copied back, so under such a burst it still grew to ~10,000 pages
# now and then (measured); a request that reaches the threshold finds all but the last
# tenth of a second already copied, and copies only that.
INTERVAL_SECONDS = 0.1

_lock = threading.Lock()
_path: str | None = None


def active() -> bool:
    return _path is not None


def start(path: str) -> None:
    """Checkpoint the database at ``path`` in the background, once per process."""
    global _path
    with _lock:
        if _path is not None:
            return
        _path = str(path)
    threading.Thread(target=_run, args=(_path,), name="sqlite-checkpoint", daemon=True).start()


def checkpoint_once(path: str, connection: sqlite3.Connection | None = None):
    """One PASSIVE checkpoint; returns the connection to reuse (None after an error)."""
    try:
        if connection is None:
            # mode=rw: never create a database that is not there (yet).
            connection = sqlite3.connect(
                f"file:{path}?mode=rw", uri=True, timeout=0, isolation_level=None
            )
            connection.execute("PRAGMA synchronous=NORMAL")  # as the request connections
        # Read the result row, so the statement is finished here and now: an unfinished one
        # would keep a read snapshot open on this connection and pin the log.
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return connection
    except sqlite3.Error as exc:  # missing file, busy, locked: try again next time
        logger.debug("background checkpoint of %s skipped: %s", path, exc)
        if connection is not None:
            connection.close()
        return None


def _run(path: str) -> None:
    connection = None
    while True:
        time.sleep(INTERVAL_SECONDS)
        connection = checkpoint_once(path, connection)
