"""Model instances from SQL prepared once per process, for the reads every SCIM request makes
(the provider, the user by SCIM id, a user's open deactivation).

Building a QuerySet, compiling it and mapping its columns cost more than the database spent
answering (about 1 ms for a link with its user on this hardware, against ~0.1 ms for the
query). These helpers keep the ORM's own column converters and ``Model.from_db``, so the
instances are the ones the ORM would have built; only the SQL is written once instead of
compiled per request.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

from django.db import connection
from psycopg.pq import TransactionStatus


class PreparedColumns:
    """The concrete columns of ``model`` as selected from ``table``, with their converters."""

    def __init__(self, model, table: str | None = None):
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.table = table or model._meta.db_table
        self.attnames = [field.attname for field in self.fields]
        self.converters = []
        for index, field in enumerate(self.fields):
            found = connection.ops.get_db_converters(field.get_col(self.table))
            found += field.get_db_converters(connection)
            if found:
                self.converters.append((index, field, found))

    def select_list(self) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{quote(self.table)}.{quote(field.column)}" for field in self.fields)

    def instance(self, values):
        """The model instance of one row's slice of values (in ``fields`` order)."""
        values = list(values)
        for index, field, functions in self.converters:
            for convert in functions:
                values[index] = convert(values[index], field, connection)
        return self.model.from_db(connection.alias, self.attnames, values)


class CompiledQuery:
    """A QuerySet's SQL, compiled by the ORM the first time it runs in a process and reused
    after. ``sentinels`` are values the QuerySet was built with, each standing exactly once
    among its parameters; ``run`` replaces them, in order, with the values it is given.
    ``suffix`` is SQL appended after compiling (`` LIMIT %s``), its parameters given after
    the sentinels' values."""

    def __init__(self, build, *sentinels, suffix: str = ""):
        self._build = build  # () -> QuerySet; called once, inside the first caller's transaction
        self._sentinels = sentinels
        self._suffix = suffix
        self._compiled: tuple | None = None
        self._columns: PreparedColumns | None = None

    def _sql_and_params(self, values) -> tuple[str, list]:
        if self._compiled is None:
            queryset = self._build()
            sql, params = queryset.query.sql_with_params()
            params = list(params)
            slots = []
            for sentinel in self._sentinels:
                if params.count(sentinel) != 1:  # pragma: no cover - a Django change
                    raise RuntimeError(f"unexpected SQL shape: {sentinel!r} in {params!r}")
                slots.append(params.index(sentinel))
            self._compiled = (sql + self._suffix, params, slots, queryset.model)
        sql, params, slots, _ = self._compiled
        params = list(params)
        for slot, value in zip(slots, values, strict=False):
            params[slot] = value
        return sql, params + list(values[len(slots) :])

    def statement(self, *values) -> tuple[str, list]:
        """The SQL and parameters ``run(*values)`` sends, to send elsewhere."""
        return self._sql_and_params(values)

    def run(self, *values) -> tuple[list[str], list[tuple]]:
        """The column names and every row."""
        sql, params = self._sql_and_params(values)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [column[0] for column in cursor.description], cursor.fetchall()

    def first_instance(self, *values):
        """The first row as an instance of the QuerySet's model, as the ORM would build it
        (the QuerySet must select the model's concrete columns), or None."""
        instance, _ = self.first_instance_and(values)
        return instance

    def first_instance_and(self, values, other: tuple[str, list] | None = None):
        """``first_instance(*values)``, and the column names and rows of ``other`` (SQL,
        parameters), read after it; on PostgreSQL both in one round trip (a pipeline)."""
        sql, params = self._sql_and_params(values)
        if self._columns is None:  # checked once against the compiled SQL
            model = self._compiled[3]
            columns = PreparedColumns(model)
            if not sql.startswith(f"SELECT {columns.select_list()} FROM"):  # pragma: no cover
                raise RuntimeError(f"unexpected column order for {model.__name__}")
            self._columns = columns
        columns = self._columns
        if other is None:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                row, found = cursor.fetchone(), None
        else:
            with sent_together((sql, params), other) as (cursor, second):
                row = cursor.fetchone()
                found = ([column[0] for column in second.description], second.fetchall())
        return (None if row is None else columns.instance(row)), found


@contextmanager
def sent_together(*statements: tuple[str, list]):
    """Run each (SQL, parameters) on a cursor of its own, in order; on PostgreSQL all in one
    round trip (a pipeline, whose first error is raised as Django's). Yields the cursors,
    their results ready."""
    with ExitStack() as stack:
        # The cursors first: opening one is where Django replaces a connection the server
        # dropped (its health check), so the pipeline runs on the one it opened.
        cursors = [stack.enter_context(connection.cursor()) for _ in statements]
        if connection.vendor == "postgresql":
            try:
                with connection.wrap_database_errors, connection.connection.pipeline():
                    for cursor, statement in zip(cursors, statements, strict=True):
                        cursor.execute(*statement)
            except Exception:
                _after_failed_pipeline()
                raise
        else:
            for cursor, statement in zip(cursors, statements, strict=True):
                cursor.execute(*statement)
        yield cursors


def _after_failed_pipeline() -> None:
    """A pipeline that failed outside a transaction (autocommit) may leave psycopg sure it
    prepared a statement the server never prepared (its PREPARE came after the failure), and
    no ROLLBACK follows to clear that (synclog/later.py): the connection goes, a new one
    starts clean. Inside a transaction, its rollback (psycopg's) clears it."""
    pg = connection.connection
    if pg is not None and pg.info.transaction_status == TransactionStatus.IDLE:
        connection.close()
