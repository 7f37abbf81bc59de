"""Column values, and INSERT statements, for the hand-written writes of the provisioning hot path.

The ORM sends every value through its field's ``get_db_prep_save`` (two to four Python calls
each). For a text or boolean column, or a foreign key to an auto id, holding a value of its
plain Python type, that chain gives the value back unchanged, yet a SCIM create paid for
about seventy such calls: a tenth of its time in the application. ``Prepared`` runs the
chain only where it can change something: dates (SQLite stores text), JSON, UUIDs, integer
columns (Django types them for PostgreSQL's server-side binding), and any value whose type
is not the column's plain one. A field class that overrides any step of the chain
(``get_db_prep_save``, ``get_db_prep_value``, ``get_prep_value``, ``to_python``) is
always prepared.

It lives here because synclog is the bottom layer: identity and provisioning import it too.
"""

from __future__ import annotations

from django.db import models
from django.db.models.fields import AutoFieldMixin

_NONE = type(None)
_UNSET = object()

# (field class, its get_prep_value, the value types it gives back unchanged)
_PLAIN = (
    (models.CharField, models.CharField.get_prep_value, (str, _NONE)),
    (models.TextField, models.TextField.get_prep_value, (str, _NONE)),
    (models.BooleanField, models.BooleanField.get_prep_value, (bool, _NONE)),
    (models.IntegerField, models.IntegerField.get_prep_value, (int, _NONE)),
)
_DB_PREP_VALUE = (models.Field.get_db_prep_value, AutoFieldMixin.get_db_prep_value)


def plain_types(field) -> tuple[type, ...]:
    """The value types ``field.get_db_prep_save`` returns unchanged, or ``()``."""
    if isinstance(field, models.ForeignKey):
        if type(field).get_db_prep_save is not models.ForeignKey.get_db_prep_save:
            return ()
        return plain_types(field.target_field)
    cls = type(field)
    if cls.get_db_prep_save is not models.Field.get_db_prep_save:
        return ()
    if cls.get_db_prep_value not in _DB_PREP_VALUE:
        return ()
    for base, get_prep_value, types in _PLAIN:
        if (
            isinstance(field, base)
            and cls.get_prep_value is get_prep_value
            and cls.to_python is base.to_python
        ):
            # bool is an int: an IntegerField given True must still become 1 where the
            # database wants it, so only exact types pass (checked with ``type(value) in``).
            return types
    return ()


class Prepared:
    """Prepare values for ``fields`` (in order) as ``get_db_prep_save`` would."""

    def __init__(self, fields):
        self.fields = [(field, plain_types(field)) for field in fields]

    def values(self, values, connection) -> list:
        return [
            value if type(value) in plain else field.get_db_prep_save(value, connection)
            for (field, plain), value in zip(self.fields, values, strict=True)
        ]

    def rows(self, rows, connection) -> list:
        """The values of several rows, flat. A column's value that is the very object the
        row before held (a sync-log row's date, provider and user, shared by every row of
        one change) is prepared once."""
        fields = self.fields
        values: list = []
        last: list = [(_UNSET, None)] * len(fields)  # (value, prepared) of each column
        for row in rows:
            for column, ((field, plain), value) in enumerate(zip(fields, row, strict=True)):
                if type(value) in plain:
                    values.append(value)
                    continue
                seen, prepared = last[column]
                if seen is not value:
                    prepared = field.get_db_prep_save(value, connection)
                    last[column] = (value, prepared)
                values.append(prepared)
        return values


class InsertStatement:
    """``INSERT INTO <model's table> (<fields' columns>) VALUES (…)``, written once, with the
    values prepared as above: the INSERTs of the hot path (history rows, a new user and its
    link) are built here."""

    def __init__(self, model, fields, connection):
        quote = connection.ops.quote_name
        self.prepared = Prepared(fields)
        columns = ", ".join(quote(field.column) for field in fields)
        self.head = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES "
        self.row = "({})".format(", ".join(["%s"] * len(fields)))

    def sql(self, rows: int = 1) -> str:
        return self.head + ", ".join([self.row] * rows)
