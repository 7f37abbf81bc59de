"""``ci_exact``: case-insensitive equality that an index can serve.

Django's ``iexact`` is ``UPPER(col) = UPPER(%s)`` on PostgreSQL and ``LIKE`` on SQLite, and
neither uses the ``Lower(username)`` unique index, so every lookup of a userName scanned the
table. ``LOWER(col) = LOWER(%s)`` matches that expression index on both databases.
"""

from django.db.models import CharField, EmailField, Lookup, TextField


class CaseInsensitiveExact(Lookup):
    lookup_name = "ci_exact"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"LOWER({lhs}) = LOWER({rhs})", [*lhs_params, *rhs_params]


def register() -> None:
    for field in (CharField, EmailField, TextField):
        field.register_lookup(CaseInsensitiveExact)
