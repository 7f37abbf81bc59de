"""Primary keys taken ahead from PostgreSQL's sequences, a block at a time.

A SCIM create writes a user, its provider link, its roles and its history, and most of those
rows name the user's key. Letting the database choose the key means reading it back before
the next statement can be written, a round trip of its own. With the user's key known
beforehand every statement of the create can be written at once and sent in one round trip
(``synclog.later.one_transaction``).

Each process keeps a block of values per sequence, drawn with ``nextval`` like any default
key, so keys never collide with rows inserted elsewhere. Values a process never uses are
gaps, as a rolled-back insert leaves. Keys from two processes interleave, so key order is
not creation order: take keys ahead only for a table nothing pages by key (users are; SCIM
lists page by the provider link's key, which the database still assigns at INSERT).
Restoring the database under running web processes can hand out a key a restored row
holds; the insert then fails as a collision, and the checked create path runs.
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


def _forget_in_child() -> None:
    # A forked child must not hand out its parent's keys, nor inherit a held lock.
    global _lock
    _lock = threading.Lock()
    _pools.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def available() -> bool:
    """Whether keys can be taken ahead here: PostgreSQL, whose keys come from sequences."""
    return connection.vendor == "postgresql"


def assign(*instances) -> None:
    """Give each new instance its primary key, taking a block from the sequence of each
    model whose pool has run out (one query for all of them, not holding the lock)."""
    models = list(dict.fromkeys(type(instance) for instance in instances))
    while True:
        with _lock:
            empty = [model for model in models if not _pools.get(model)]
            if not empty:
                for instance in instances:
                    key = _pools[type(instance)].popleft()
                    setattr(instance, type(instance)._meta.pk.attname, key)
                return
        blocks = _take(empty)  # another thread may refill meanwhile: both blocks are kept
        with _lock:
            for model, block in blocks.items():
                _pools.setdefault(model, collections.deque()).extend(block)


def _take(models: list[type]) -> dict[type, list[int]]:
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
    return {model: sorted(row[index] for row in rows) for index, model in enumerate(models)}
