"""Model instances from SQL prepared once per process, for the reads every SCIM request makes
(the provider, the user by SCIM id, a user's open deactivation).

Building a QuerySet, compiling it and mapping its columns cost more than the database spent
answering (about 1 ms for a link with its user on this hardware, against ~0.1 ms for the
query). These helpers keep the ORM's own column converters and ``Model.from_db``, so the
instances are the ones the ORM would have built; only the SQL is written once instead of
compiled per request.
"""

from __future__ import annotations

from django.db import connection


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
