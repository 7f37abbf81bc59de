"""Primary keys taken ahead from PostgreSQL's sequences, a block at a time.

A SCIM create writes a user, its provider link, its roles and its history, and most of those
rows name the user's key. Letting the database choose the key means reading it back before
the next statement can be written: a round trip for the user, another for the link. With
the keys known beforehand every statement of the create can be written at once and sent in
one round trip (``synclog.later.one_transaction``).

Each process keeps a block of values per sequence, drawn with ``nextval`` like any default
key, so keys never collide with rows inserted elsewhere. Values a process never uses are
gaps, as a rolled-back insert leaves. Keys from two processes interleave, so key order is
not creation order; nothing relies on it (paging is by key, and a walk by key sees every row
once either way).
"""

from __future__ import annotations

import collections
import os
import threading

from django.db import connection

BLOCK = 32  # one query per 32 creates of a process

_lock = threading.Lock()  # the web server runs requests on several threads
_pools: dict[type, collections.deque] = {}
_sequences: dict[type, str] = {}
_pid = os.getpid()


def available() -> bool:
    """Whether keys can be taken ahead here: PostgreSQL, whose keys come from sequences."""
    return connection.vendor == "postgresql"


def assign(*instances) -> None:
    """Give each new instance its primary key, taking a block from the sequences whose pool
    has run out (one query for all of them)."""
    global _pid
    with _lock:
        if os.getpid() != _pid:  # a forked child must not hand out its parent's keys
            _pools.clear()
            _pid = os.getpid()
        empty = list(dict.fromkeys(type(i) for i in instances if not _pools.get(type(i))))
        if empty:
            _refill(empty)
        for instance in instances:
            setattr(instance, type(instance)._meta.pk.attname, _pools[type(instance)].popleft())


def _refill(models: list[type]) -> None:
    with connection.cursor() as cursor:
        for model in models:
            if model not in _sequences:
                cursor.execute(
                    "SELECT pg_get_serial_sequence(%s, %s)",
                    [connection.ops.quote_name(model._meta.db_table), model._meta.pk.column],
                )
                _sequences[model] = cursor.fetchone()[0]
        columns = ", ".join("nextval(%s::regclass)" for _ in models)
        cursor.execute(
            f"SELECT {columns} FROM generate_series(1, %s)",
            [*(_sequences[model] for model in models), BLOCK],
        )
        rows = cursor.fetchall()
    for index, model in enumerate(models):
        _pools[model] = collections.deque(sorted(row[index] for row in rows))
