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

``transaction()`` is ``atomic()`` around such a block, for a request's whole write: as the
outermost transaction on PostgreSQL, its COMMIT goes out in the same pipeline.

``one_transaction()`` goes further, on PostgreSQL and outside any transaction: every
statement of the block is queued, and the lot is sent as one pipeline between a BEGIN and a
COMMIT of its own (psycopg's BEGIN would wait for its answer, a round trip of its own). A
whole write, its COMMIT included, costs one round trip; nothing in the block may read from
the database. Should anything fail part way, on the server (a unique violation) or in the
client (a value psycopg cannot encode, after earlier statements went out), the transaction
is rolled back before the error goes on: never half a create.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack, contextmanager

from django.db import connection
from django.db import transaction as db_transaction
from psycopg.pq import TransactionStatus

_local = threading.local()  # the web server runs requests on several threads


def _savepoints() -> int:
    # Django lists one entry per nested atomic block: a savepoint id, or None for a block
    # without one (savepoint=False), which cannot roll back on its own.
    return sum(1 for sid in connection.savepoint_ids if sid)


class _Queue:
    def __init__(self, depth: int):
        self.depth = depth  # savepoints open when the block began
        # (sql, params, on_result): on_result is given the statement's first row
        self.statements: list[tuple[str, list, Callable | None]] = []


def run(sql: str, params: list, on_result: Callable | None = None) -> None:
    """Execute ``sql`` now, or at the end of the enclosing block. ``on_result`` is called
    with the statement's first row once it has run (an INSERT's RETURNING)."""
    queue = getattr(_local, "queue", None)
    if queue is not None and _savepoints() == queue.depth:
        queue.statements.append((sql, params, on_result))
        return
    _one_by_one([(sql, params, on_result)])


def _start(depth: int) -> _Queue:
    if getattr(_local, "queue", None) is not None:
        raise RuntimeError("synclog.later blocks do not nest")
    queue = _local.queue = _Queue(depth)
    return queue


@contextmanager
def together():
    """Collect ``run`` statements made in this block (which must sit inside a transaction)
    and send them when it ends without an exception. Blocks do not nest."""
    queue = _start(_savepoints())
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
        queue = _start(_savepoints())
        try:
            yield
        finally:
            _local.queue = None
        outermost = (
            len(connection.atomic_blocks) == 1
            and connection.commit_on_exit
            and not connection.needs_rollback
        )
        _send(queue.statements, commit=outermost and connection.vendor == "postgresql")


@contextmanager
def one_transaction():
    """Queue every ``run`` statement of this block and send them when it ends as one
    transaction in one round trip (see above). PostgreSQL only, never inside a transaction;
    the block must not read. A failed statement raises Django's error (``IntegrityError``
    for a unique violation) with nothing written."""
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or not connection.get_autocommit()
    ):
        raise RuntimeError("one_transaction() needs PostgreSQL and no open transaction")
    queue = _start(0)
    try:
        yield
    finally:
        _local.queue = None
    if not queue.statements:
        return
    try:
        _pipelined(queue.statements, begin=True, commit=True)
    except BaseException:
        _roll_back_after_failure()
        raise


def _roll_back_after_failure() -> None:
    """After a failed ``one_transaction`` pipeline: end the transaction it opened, if the
    server still holds one. Should that fail too, the connection goes, and the first error
    is the one raised."""
    pg = connection.connection
    if pg is None or pg.closed or pg.broken:
        return  # the server drops an open transaction with the connection
    if pg.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        try:
            # psycopg's rollback(), not a ROLLBACK statement: it also forgets which
            # statements it prepared. A statement a pipeline was preparing when an earlier
            # one failed is marked prepared though the server never ran its PREPARE; only
            # the first ROLLBACK statement of a connection cleared that state, and the next
            # create on it failed with "prepared statement _pg3_4 does not exist".
            pg.rollback()
        except Exception:
            connection.close()


def _send(statements: list, *, commit: bool = False) -> None:
    if commit or (connection.vendor == "postgresql" and len(statements) > 1):
        # One round trip; with ``commit`` (PostgreSQL, the outermost block) the COMMIT goes
        # with the statements, even when there are none.
        _pipelined(statements, commit=commit)
    else:
        _one_by_one(statements)


def _one_by_one(statements: list) -> None:
    with connection.cursor() as cursor:
        for sql, params, on_result in statements:
            cursor.execute(sql, params)
            if on_result is not None:
                on_result(cursor.fetchone())


def _pipelined(statements: list, *, begin: bool = False, commit: bool = False) -> None:
    """The statements in one psycopg pipeline; each whose first row is wanted runs on a
    cursor of its own (a cursor keeps only its last result). Results are there once the
    pipeline has ended, and its first error is raised there, wrapped as Django's (an
    IntegrityError stays an IntegrityError)."""
    wanted = []
    with ExitStack() as cursors:
        # The cursor first: opening it is where Django replaces a connection the server
        # dropped (its health check), so the pipeline runs on the one it opened.
        cursor = cursors.enter_context(connection.cursor())
        pg = connection.connection
        with connection.wrap_database_errors, pg.pipeline():
            if begin:
                pg.execute("BEGIN", prepare=False)
            for sql, params, on_result in statements:
                if on_result is None:
                    cursor.execute(sql, params)
                else:
                    own = cursors.enter_context(connection.cursor())
                    own.execute(sql, params)
                    wanted.append((own, on_result))
            if commit:
                pg.execute("COMMIT", prepare=False)
        rows = [(own.fetchone(), on_result) for own, on_result in wanted]
    for row, on_result in rows:
        on_result(row)
