"""The one recording API every app writes history through.

Callers run these inside their own transaction, so a change and its history commit together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from . import later
from .column_values import InsertStatement, Prepared
from .models import ActorKind, AuditLogEntry, RejectedRequest, SyncChange, SyncLogEntry


@dataclass(frozen=True)
class Actor:
    """Who made a change: a provider (label = its credential username), an administrator
    (label = their username) or the system (scheduled work)."""

    kind: str
    label: str
    provider_id: int | None = None
    provider_label: str = ""
    user_id: int | None = None
    request_id: str = ""

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(kind=ActorKind.SYSTEM, label=label)

    @classmethod
    def administrator(cls, user, request_id: str = "") -> Actor:
        return cls(
            kind=ActorKind.ADMINISTRATOR,
            label=user.get_username(),
            user_id=user.pk,
            request_id=request_id,
        )

    @property
    def is_provider(self) -> bool:
        return self.kind == ActorKind.PROVIDER


class _Insert:
    """A multi-row INSERT of some columns of a model, its SQL written once per process.

    Every provisioning change writes these rows; ``Model.objects.create``/``bulk_create``
    spent more preparing them than the database spent storing them. Values are prepared as
    the ORM would (synclog/column_values.py). History rows are never read back here, so nothing is
    returned."""

    def __init__(self, model, attnames: tuple[str, ...], *, shared: int = 0):
        fields = [model._meta.get_field(name) for name in attnames]
        self.statement = InsertStatement(model, fields, connection)
        self.unnest_sql = None
        if shared and connection.vendor == "postgresql":
            # Rows that share their first ``shared`` columns (a change's date, provider,
            # user, request): those sent once, the rest as one array per column. One
            # statement whatever the row count, so one prepared statement, and a third of the
            # parameters for a create's eight sync-log rows (0.1-0.17 ms of a create).
            quote = connection.ops.quote_name
            names = [f"v{i}" for i in range(len(fields) - shared)]
            # text[], not the columns' varchar(n)[]: a cast cuts an over-long value short,
            # where the assignment to the column refuses it, as a VALUES row would.
            arrays = ["%s::text[]"] * (len(fields) - shared)
            self.unnest_sql = (
                f"INSERT INTO {quote(model._meta.db_table)} "
                f"({', '.join(quote(field.column) for field in fields)}) "
                f"SELECT {', '.join(['%s'] * shared + names)} "
                f"FROM unnest({', '.join(arrays)}) AS rows({', '.join(names)})"
            )
            self.shared_prepared = Prepared(fields[:shared])
            self.varying_prepared = Prepared(fields[shared:])

    def run(self, rows: list[tuple]) -> None:
        if not rows:
            return
        # Through synclog.later: history is never read back in the request that writes it.
        statement = self.statement
        later.run(statement.sql(len(rows)), statement.prepared.rows(rows, connection))

    def run_shared(self, shared: tuple, rows: list[tuple]) -> None:
        """Rows of ``shared`` values followed by each of ``rows``."""
        if not rows:
            return
        if self.unnest_sql is None:
            self.run([(*shared, *row) for row in rows])
            return
        params = self.shared_prepared.values(list(shared), connection)
        varying = self.varying_prepared.rows(rows, connection)
        width = len(rows[0])
        params += [varying[column::width] for column in range(width)]
        later.run(self.unnest_sql, params)


_SYNC_COLUMNS = (
    "created_at", "provider_id", "provider_label", "user_id", "user_label", "request_id",
    "change_type", "attribute", "old_value", "new_value",
)  # fmt: skip
_SYNC_SHARED = 6  # the columns every row of one change shares
_AUDIT_COLUMNS = (
    "created_at", "actor_kind", "actor_label", "action", "target_label", "detail", "request_id",
)  # fmt: skip
_inserts: dict[str, _Insert] = {}


def _insert(name: str) -> _Insert:
    if name not in _inserts:
        model, columns = {
            "sync": (SyncLogEntry, _SYNC_COLUMNS),
            "audit": (AuditLogEntry, _AUDIT_COLUMNS),
        }[name]
        _inserts[name] = _Insert(model, columns, shared=_SYNC_SHARED if name == "sync" else 0)
    return _inserts[name]


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sync_change(
    *,
    actor: Actor,
    user_id: int | None,
    user_label: str,
    change: SyncChange,
    attribute: str = "",
    old=None,
    new=None,
    provider_id: int | None = None,
    provider_label: str = "",
) -> None:
    """One sync-log row. The provider defaults to the actor's (a provider, or the provider on
    whose behalf scheduled work runs)."""
    sync_changes(
        actor=actor,
        user_id=user_id,
        user_label=user_label,
        changes=[(change, attribute, old, new)],
        provider_id=provider_id,
        provider_label=provider_label,
    )


def sync_changes(
    *,
    actor: Actor,
    user_id: int | None,
    user_label: str,
    changes,
    provider_id: int | None = None,
    provider_label: str = "",
) -> None:
    """Several sync-log rows for one user in one INSERT: ``changes`` holds
    ``(change, attribute, old, new)`` tuples. The provider defaults to the actor's."""
    now = timezone.now()
    if provider_id is None:
        provider_id = actor.provider_id
    provider_label = provider_label or actor.provider_label
    _insert("sync").run_shared(
        (now, provider_id, provider_label, user_id, user_label, actor.request_id),
        [(str(change), attr, _text(old), _text(new)) for change, attr, old, new in changes],
    )


def sync_change_of_users(
    *, actor: Actor, users, change: SyncChange, attribute: str = "", old=None, new=None
) -> None:
    """The same change to each of ``users`` (``(user id, user label)`` pairs): a row each, in
    one INSERT. The provider is the actor's."""
    now = timezone.now()
    shared = (now, actor.provider_id, actor.provider_label)
    change_of = (actor.request_id, str(change), attribute, _text(old), _text(new))
    _insert("sync").run([(*shared, pk, label, *change_of) for pk, label in users])


def audit(*, actor: Actor, action: str, target_label: str = "", **detail) -> None:
    _insert("audit").run(
        [
            (
                timezone.now(),
                str(actor.kind),
                actor.label,
                action,
                target_label,
                {k: _text(v) for k, v in detail.items()},
                actor.request_id,
            )  # fmt: skip
        ]
    )


# Text PostgreSQL cannot store: NUL, and lone UTF-16 surrogates (no UTF-8 for them). A request
# path can carry either (``/Users%00``), and the error's detail quotes the path.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def rejected_request(
    *,
    provider_id: int | None,
    provider_label: str,
    method: str,
    path: str,
    status: int,
    scim_type: str = "",
    detail: str = "",
    request_id: str = "",
) -> RejectedRequest:
    return RejectedRequest.objects.create(
        created_at=timezone.now(),
        provider_id=provider_id,
        provider_label=provider_label,
        method=method,
        path=_UNSTORABLE.sub("\ufffd", path[:500]),
        status=status,
        scim_type=scim_type,
        detail=_UNSTORABLE.sub("\ufffd", detail[:2000]),
        request_id=request_id,
    )
