"""Writes whose results nobody reads, sent together at the end of a request's work.

A SCIM create or deprovision ends with writes nothing reads back in the request: its
sync-log and audit rows, the provider's user count, the link's version, the new user's
roles, the user's status (its row is locked and the services answer from the instance).
On PostgreSQL each was a round trip of its own (0.1-0.25 ms on a small machine, more than
the statement itself). Inside ``together()`` they are queued and sent when the
block ends, still inside the transaction: on PostgreSQL in one round trip (psycopg's
pipeline mode), elsewhere one after another. Outside ``together()`` (console, Celery
tasks, commands) ``run`` executes at once.

A statement queued is one the caller would have run at that point, so the queue keeps
their order; it only moves them after the reads that follow. Nothing in between may read
what they write: that is the contract of every caller of ``run``. Statements issued inside
a savepoint opened after ``together()`` began run at once, so a savepoint rolled back takes
its writes with it. An error in a queued statement surfaces when the block ends, inside the
transaction, which then rolls back as any failed request does.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from django.db import connection
from django.db import transaction as db_transaction

_local = threading.local()  # the web server runs requests on several threads


def _savepoints() -> int:
    # Django lists one entry per nested atomic block: a savepoint id, or None for a block
    # without one (savepoint=False), which cannot roll back on its own.
    return sum(1 for sid in connection.savepoint_ids if sid)


class _Queue:
    def __init__(self, depth: int):
        self.depth = depth  # savepoints open when the block began
        self.statements: list[tuple[str, list]] = []


def run(sql: str, params: list) -> None:
    """Execute ``sql`` now, or at the end of the enclosing ``together()`` block."""
    queue = getattr(_local, "queue", None)
    if queue is not None and _savepoints() == queue.depth:
        queue.statements.append((sql, params))
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@contextmanager
def together():
    """Collect ``run`` statements made in this block (which must sit inside a transaction)
    and send them when it ends without an exception. Blocks do not nest."""
    if getattr(_local, "queue", None) is not None:
        raise RuntimeError("synclog.later.together() does not nest")
    queue = _Queue(_savepoints())
    _local.queue = queue
    try:
        yield
    finally:
        _local.queue = None
    _send(queue.statements)


@contextmanager
def transaction():
    """``transaction.atomic()`` around ``together()``, for a request's whole write: when it
    is the outermost transaction on PostgreSQL, the COMMIT goes out in the pipeline of the
    queued statements, one round trip for both (psycopg's ``commit()`` on the idle
    connection Django then calls sends nothing). Inside a caller's transaction (a test's)
    it is a savepoint, as ``atomic()`` makes, and commits nothing."""
    with db_transaction.atomic():
        if getattr(_local, "queue", None) is not None:
            raise RuntimeError("synclog.later blocks do not nest")
        queue = _Queue(_savepoints())
        _local.queue = queue
        try:
            yield
        finally:
            _local.queue = None
        outermost = len(connection.atomic_blocks) == 1 and not connection.needs_rollback
        _send(queue.statements, commit=outermost and connection.vendor == "postgresql")


@contextmanager
def one_transaction():
    """Queue every ``run`` statement of this block and send them when it ends as one
    all-or-nothing transaction in one round trip (see above). PostgreSQL only, never inside
    a transaction; the block must not read. A failed statement raises Django's error
    (``IntegrityError`` for a unique or foreign key violation) with nothing written."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        raise RuntimeError("one_transaction() needs PostgreSQL and no open transaction")
    if getattr(_local, "queue", None) is not None:
        raise RuntimeError("synclog.later blocks do not nest")
    queue = _Queue(0)
    _local.queue = queue
    try:
        yield
    finally:
        _local.queue = None
    if not queue.statements:
        return
    with connection.cursor() as cursor:
        # Django's connection is in autocommit outside a transaction, so psycopg sends no
        # BEGIN: the pipeline's single Sync commits the lot.
        with connection.wrap_database_errors, connection.connection.pipeline():
            for sql, params in queue.statements:
                cursor.execute(sql, params)


def _send(statements: list[tuple[str, list]], *, commit: bool = False) -> None:
    if not statements:
        return
    with connection.cursor() as cursor:
        if commit:  # PostgreSQL, the outermost block: the COMMIT goes with the statements
            with connection.wrap_database_errors, connection.connection.pipeline():
                for sql, params in statements:
                    cursor.execute(sql, params)
                connection.connection.execute("COMMIT", prepare=False)
        elif connection.vendor == "postgresql" and len(statements) > 1:
            # One round trip: the statements go out back to back and the pipeline's end
            # waits for all their results and raises the first error, which may come out
            # of psycopg there rather than from an execute: wrapped as Django's, as
            # execute's are (an IntegrityError stays an IntegrityError).
            with connection.wrap_database_errors, connection.connection.pipeline():
                for sql, params in statements:
                    cursor.execute(sql, params)
        else:
            for sql, params in statements:
                cursor.execute(sql, params)
