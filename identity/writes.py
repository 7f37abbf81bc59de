"""Single-row UPDATEs of a few columns, for the provisioning hot path.

``save(update_fields=…)`` and ``QuerySet.update()`` build and compile a statement on every
call, which cost several times what the database spends on a one-row UPDATE by primary key;
every SCIM PATCH makes two or three of them. Values still go through each field's
``get_db_prep_save``. No model signals are sent: nothing in Gatehouse listens for saves.
"""

from __future__ import annotations

from django.db import connection


def update_columns(instance, **values) -> None:
    """Set ``values`` on ``instance`` and write just those columns of its row."""
    model = type(instance)
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in values]
    for name, value in values.items():
        setattr(instance, name, value)
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    params = [
        field.get_db_prep_save(getattr(instance, field.attname), connection) for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} SET {assignments} "
            f"WHERE {quote(model._meta.pk.column)} = %s",
            [*params, instance.pk],
        )


def insert(instance, *, ignore_conflicts: bool = False) -> bool:
    """INSERT ``instance`` as a new row and set its primary key: what ``save(force_insert=True)``
    does for a model with an auto primary key, without its per-call preparation. Field
    defaults and ``pre_save`` (auto_now and the like) apply as in ``save``.

    ``ignore_conflicts``: a row that would break a unique constraint is not inserted (no error,
    the transaction goes on) and False is returned."""
    model = type(instance)
    quote = connection.ops.quote_name
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    params = [
        field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields
    ]
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    pk = model._meta.pk
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:
            cursor.execute(f"{sql} RETURNING {quote(pk.column)}", params)
            row = cursor.fetchone()
            if row is None:
                return False
            new_pk = row[0]
        else:  # SQLite before 3.35
            cursor.execute(sql, params)
            if cursor.rowcount == 0:
                return False
            new_pk = cursor.lastrowid
    setattr(instance, pk.attname, new_pk)
    instance._state.adding = False
    instance._state.db = connection.alias
    return True
