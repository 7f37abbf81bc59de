"""The one recording API every app writes history through.

Callers run these inside their own transaction, so a change and its history commit together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from . import later
from .column_values import InsertStatement
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

    def __init__(self, model, attnames: tuple[str, ...]):
        fields = [model._meta.get_field(name) for name in attnames]
        self.statement = InsertStatement(model, fields, connection)

    def run(self, rows: list[tuple]) -> None:
        if not rows:
            return
        # Through synclog.later: history is never read back in the request that writes it.
        statement = self.statement
        later.run(statement.sql(len(rows)), statement.prepared.rows(rows, connection))


_SYNC_COLUMNS = (
    "created_at", "provider_id", "provider_label", "user_id", "user_label", "change_type",
    "attribute", "old_value", "new_value", "request_id",
)  # fmt: skip
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
        _inserts[name] = _Insert(model, columns)
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
    _insert("sync").run(
        [
            (
                now,
                provider_id,
                provider_label,
                user_id,
                user_label,
                str(change),
                attribute,
                _text(old),
                _text(new),
                actor.request_id,
            )  # fmt: skip
            for change, attribute, old, new in changes
        ]
    )


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
