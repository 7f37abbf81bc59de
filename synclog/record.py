"""The one recording API every app writes history through.

Callers run these inside their own transaction, so a change and its history commit together.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

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
) -> SyncLogEntry:
    """One sync-log row. The provider defaults to the actor's (a provider, or the provider on
    whose behalf scheduled work runs)."""
    return SyncLogEntry.objects.create(
        created_at=timezone.now(),
        provider_id=provider_id if provider_id is not None else actor.provider_id,
        provider_label=provider_label or actor.provider_label,
        user_id=user_id,
        user_label=user_label,
        change_type=change,
        attribute=attribute,
        old_value=_text(old),
        new_value=_text(new),
        request_id=actor.request_id,
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
    if not changes:
        return
    now = timezone.now()
    if provider_id is None:
        provider_id = actor.provider_id
    provider_label = provider_label or actor.provider_label
    SyncLogEntry.objects.bulk_create(
        [
            SyncLogEntry(
                created_at=now,
                provider_id=provider_id,
                provider_label=provider_label,
                user_id=user_id,
                user_label=user_label,
                change_type=change,
                attribute=attribute,
                old_value=_text(old),
                new_value=_text(new),
                request_id=actor.request_id,
            )
            for change, attribute, old, new in changes
        ]
    )


def audit(*, actor: Actor, action: str, target_label: str = "", **detail) -> AuditLogEntry:
    return AuditLogEntry.objects.create(
        created_at=timezone.now(),
        actor_kind=actor.kind,
        actor_label=actor.label,
        action=action,
        target_label=target_label,
        detail={k: _text(v) for k, v in detail.items()},
        request_id=actor.request_id,
    )


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
        path=path[:500],
        status=status,
        scim_type=scim_type,
        detail=detail[:2000],
        request_id=request_id,
    )
