"""Single-row UPDATEs of a few columns, for the provisioning hot path.

``save(update_fields=…)`` and ``QuerySet.update()`` build and compile a statement on every
call, which cost several times what the database spends on a one-row UPDATE by primary key;
every SCIM PATCH makes two or three of them. Values are prepared as the ORM would
(synclog/column_values.py). No model signals are sent: nothing in Gatehouse listens for saves.
"""

from __future__ import annotations

from django.db import connection

from identity.prepared import sent_together
from synclog import later
from synclog.column_values import InsertStatement, Prepared


def update_columns(instance, **values) -> None:
    """Set ``values`` on ``instance`` and write just those columns of its row."""
    sql, params = _update(instance, values)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def update_columns_later(instance, **values) -> None:
    """``update_columns`` through ``synclog.later``: for a write nothing reads back in the
    request (a version bump, a locked user's status) and that cannot fail on a constraint."""
    later.run(*_update(instance, values))


def _update(instance, values: dict) -> tuple[str, list]:
    model = type(instance)
    key = (model, *values)
    plan = _update_plans.get(key) or _update_plan(key)
    fields, prepared, sql = plan
    for name, value in values.items():
        setattr(instance, name, value)
    params = prepared.values([getattr(instance, field.attname) for field in fields], connection)
    return sql, [*params, instance.pk]


_update_plans: dict = {}


def _update_plan(key: tuple):
    model, *names = key
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = (
        f"UPDATE {quote(model._meta.db_table)} SET {assignments} "
        f"WHERE {quote(model._meta.pk.column)} = %s"
    )
    plan = _update_plans[key] = (fields, Prepared(fields), sql)
    return plan


def insert(instance, *, ignore_conflicts: bool = False) -> bool:
    """INSERT ``instance`` as a new row and set its primary key: what ``save(force_insert=True)``
    does for a model with an auto primary key, without its per-call preparation. Field
    defaults and ``pre_save`` (auto_now and the like) apply as in ``save``.

    ``ignore_conflicts``: a row that would break a unique constraint is not inserted (no error,
    the transaction goes on) and False is returned."""
    sql, params, returning = _insert(instance, ignore_conflicts)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return _inserted(instance, cursor, returning)


def insert_then_read(instance, sql: str, params: list) -> tuple[bool, tuple | None]:
    """``insert(instance, ignore_conflicts=True)``, then one read that sees its row, in one
    round trip on PostgreSQL: both go out in a pipeline, the read whether or not the row
    went in. Returns whether it was inserted, and the read's first row."""
    insert_sql, insert_params, returning = _insert(instance, True)
    with sent_together((insert_sql, insert_params), (sql, params)) as (inserting, reading):
        return _inserted(instance, inserting, returning), reading.fetchone()


def _inserted(instance, cursor, returning: bool) -> bool:
    """Set the key an INSERT just gave ``instance``; False when it inserted nothing."""
    if returning:
        row = cursor.fetchone()
        new_pk = None if row is None else row[0]
    else:  # SQLite before 3.35
        new_pk = cursor.lastrowid if cursor.rowcount else None
    if new_pk is None:
        return False
    _set_key(instance, new_pk)
    return True


def _set_key(instance, key) -> None:
    setattr(instance, type(instance)._meta.pk.attname, key)
    instance._state.adding = False
    instance._state.db = connection.alias


def insert_later(instance, *, read_key: bool = False) -> None:
    """INSERT ``instance`` through ``synclog.later``: for a row nothing in the request reads
    and that cannot conflict (a new user's roles), or one of a write sent as one
    transaction (``later.one_transaction``), whose key was taken ahead (identity/keys.py)
    or, with ``read_key``, is read back from the INSERT once it has run."""
    if read_key:
        sql, params, _ = _insert(instance, "later-returning")
        later.run(sql, params, lambda row: _set_key(instance, row[0]))
        return
    keyed = instance.pk is not None
    sql, params, _ = _insert(instance, "later-keyed" if keyed else "later")
    later.run(sql, params)
    if keyed:
        _set_key(instance, instance.pk)


_insert_plans: dict = {}


def _insert(instance, kind) -> tuple[str, list, bool]:
    """The INSERT of ``instance``: SQL, prepared values, and whether it returns the new key.
    ``kind``: ``ignore_conflicts`` (a bool), "later" (no RETURNING), "later-keyed" (the
    primary key given, no RETURNING) or "later-returning" (RETURNING, no ON CONFLICT)."""
    model = type(instance)
    plan = _insert_plans.get((model, kind)) or _insert_plan(model, kind)
    fields, prepared, sql, returning = plan
    params = prepared.values([field.pre_save(instance, add=True) for field in fields], connection)
    return sql, params, returning


def _insert_plan(model, kind):
    """The statement for ``model``, written once per process (one database per process:
    settings choose it once)."""
    keyed = kind == "later-keyed"
    fields = [field for field in model._meta.concrete_fields if keyed or not field.primary_key]
    statement = InsertStatement(model, fields, connection)
    sql = statement.sql()
    if kind is True:
        sql += " ON CONFLICT DO NOTHING"
    returning = kind in (True, False, "later-returning")
    returning = returning and connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    plan = _insert_plans[model, kind] = (fields, statement.prepared, sql, returning)
    return plan
