"""Django's SQLite backend, with the placeholder rewrite remembered per statement, and
checkpoints in the background in web processes (checkpoint.py).

Django writes SQL with ``%s`` placeholders and its SQLite cursor rewrites them to ``?`` with
a regular expression on every ``execute``: 3% of a SCIM create, whose statements are the
same few strings every time. The rewrite is a pure function of the SQL text, so its result
is kept, in a bounded dict (statements with a varying number of placeholders, such as
``IN (…)`` lists, are many and are not worth keeping forever).
"""

from django.db.backends.sqlite3 import base

from . import checkpoint

_CONVERTED: dict[str, str] = {}
_LIMIT = 2000  # statements kept
_LONGEST = 2000  # characters: bulk INSERTs and long IN (…) lists vary and are not kept


class CursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query, *, param_names=None):
        if param_names is not None:  # "pyformat" style: depends on the names, rare
            return super().convert_query(query, param_names=param_names)
        converted = _CONVERTED.get(query)
        if converted is None:
            converted = super().convert_query(query)
            if len(query) > _LONGEST:
                return converted
            if len(_CONVERTED) >= _LIMIT:
                _CONVERTED.clear()
            _CONVERTED[query] = converted
        return converted


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name=None):
        return self.connection.cursor(factory=CursorWrapper)

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        # SQLite's own lower() folds ASCII only: "USER@EXÄMPLE.COM" and "user@exämple.com"
        # were two users, where PostgreSQL's (a UTF-8 locale) folds them into one. The
        # userName and email indexes are on LOWER(…) (identity.User.Meta), so the same
        # function must compute them everywhere: Python's, deterministic, on every connection
        # Gatehouse opens (web, worker, commands). identity/migrations/0004 rebuilt them.
        connection.create_function("lower", 1, _lower, deterministic=True)
        if checkpoint.active():  # a web process: its checkpoints run in the background
            connection.execute(f"PRAGMA wal_autocheckpoint={checkpoint.AUTOCHECKPOINT_PAGES}")
        return connection


def _lower(value):
    if value is None:
        return None
    return (value if isinstance(value, str) else str(value)).lower()
