"""Running due deactivations (the sweep), and the mass-deprovisioning guard.

The schedule is the ``PendingDeactivation`` table. Exactly-once comes from the database, not
the broker: a batch claims due rows under a row lock (PostgreSQL: ``FOR UPDATE SKIP LOCKED``,
so several workers share the work; SQLite: the ``IMMEDIATE`` transaction takes the database
write lock at BEGIN, so sweeps run one after another) and marks each row done in the same
transaction that deactivates its user. A worker killed mid-batch rolls back: the rows stay
pending and the next sweep (beat, every minute, and at worker start) runs them.

Lock order is user, then schedule row, everywhere except here; the sweep takes rows first, so
it takes users with SKIP LOCKED and leaves a user that a request is changing to the next sweep,
instead of waiting (which could deadlock with that request).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from synclog import record
from synclog.models import AuditLogEntry, SyncChange, SyncLogEntry
from synclog.record import Actor

from . import services
from .models import (
    DeactivationState,
    DeprovisionGuard,
    GuardState,
    PendingDeactivation,
    User,
    UserStatus,
)


@dataclass
class SweepResult:
    deactivated: int = 0
    deferred: int = 0
    held: int = 0

    @property
    def total(self) -> int:
        return self.deactivated + self.deferred + self.held

    def add(self, state: str) -> None:
        if state == DeactivationState.DONE:
            self.deactivated += 1
        elif state == DeactivationState.DEFERRED:
            self.deferred += 1
        elif state == DeactivationState.HELD:
            self.held += 1


# --- the sweep -------------------------------------------------------------------------------


def _claim(queryset):
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, of=("self",))
    # SQLite: no row locks; the IMMEDIATE transaction already holds the database write lock.
    return queryset


def _tripped_providers(provider_ids) -> set[int]:
    return set(
        DeprovisionGuard.objects.filter(
            state=GuardState.TRIPPED, provider_id__in=[p for p in provider_ids if p]
        ).values_list("provider_id", flat=True)
    )


def _run_rows(rows: list[PendingDeactivation], result: SweepResult) -> int:
    """Run claimed due rows in bulk: a handful of statements per batch, not a few per row, so
    10,000 due deactivations take seconds (bench/deactivation_sweep.py). What each row does
    is ``services.due_outcome``, the rule the one-row path (``_run_deactivation``) follows too,
    and the rows written are the ones it writes. Returns how many ran; a row whose user a
    request holds locked is left pending for the next sweep."""
    if not rows:
        return 0
    users = {
        u.pk: u
        for u in _claim(
            User.objects.filter(pk__in=[r.user_id for r in rows]).only(
                "id", "username", "status", "legal_hold"
            )
        )
    }
    held_providers = _tripped_providers({r.provider_id for r in rows})
    now = timezone.now()
    by_state: dict[str, list[PendingDeactivation]] = {}
    to_block: list[int] = []
    sync_rows: list[SyncLogEntry] = []
    audit_rows: list[AuditLogEntry] = []
    for row in rows:
        user = users.get(row.user_id)
        if user is None:
            continue  # a request holds this user right now; the next sweep takes it
        state = services.due_outcome(user, held=row.provider_id in held_providers)
        by_state.setdefault(state, []).append(row)
        result.add(state)
        actor = services.requester_of(row)

        def sync(change, old, new, attribute="status", user=user, actor=actor, row=row):
            sync_rows.append(_sync_entry(row, user, actor, change, attribute, old, new, now))

        if state == DeactivationState.DONE:
            sync(SyncChange.USER_DEACTIVATED, user.status, UserStatus.DEACTIVATED)
            audit_rows.append(_deactivated_audit_entry(row, user, actor, now))
            continue
        if user.status == UserStatus.ACTIVE:  # only if changed behind the services' back
            to_block.append(user.pk)
            sync(SyncChange.USER_BLOCKED, UserStatus.ACTIVE, UserStatus.BLOCKED)
        if state == DeactivationState.HELD:
            sync(SyncChange.DEACTIVATION_HELD, row.due_at.isoformat(), "held", "deactivation")
        else:
            sync(
                SyncChange.DEACTIVATION_DEFERRED,
                row.due_at.isoformat(),
                "deferred (legal hold)",
                "deactivation",
            )
    done = by_state.get(DeactivationState.DONE, [])
    if done:
        User.objects.filter(pk__in=[r.user_id for r in done]).update(
            status=UserStatus.DEACTIVATED, updated_at=now
        )
    if to_block:
        User.objects.filter(pk__in=to_block).update(status=UserStatus.BLOCKED, updated_at=now)
    for state, group in by_state.items():
        finished = now if state == DeactivationState.DONE else None
        PendingDeactivation.objects.filter(pk__in=[r.pk for r in group]).update(
            state=state, finished_at=finished
        )
        for row in group:
            row.state, row.finished_at = state, finished
    # synclog.record writes one row per call; these are built field for field as
    # record.sync_change and record.audit build them, so a batch is two INSERTs.
    SyncLogEntry.objects.bulk_create(sync_rows)
    AuditLogEntry.objects.bulk_create(audit_rows)
    return sum(len(group) for group in by_state.values())


def _sync_entry(row, user, actor, change, attribute, old, new, now) -> SyncLogEntry:
    return SyncLogEntry(
        created_at=now,
        provider_id=row.provider_id,
        provider_label=row.provider_label,
        user_id=user.pk,
        user_label=user.username,
        change_type=change,
        attribute=attribute,
        old_value=str(old),
        new_value=str(new),
        request_id=actor.request_id,
    )


def _deactivated_audit_entry(row, user, actor, now) -> AuditLogEntry:
    return AuditLogEntry(
        created_at=now,
        actor_kind=actor.kind,
        actor_label=actor.label,
        action="user_deactivated",
        target_label=user.username,
        detail={"scheduled_at": row.created_at.isoformat(), "due_at": row.due_at.isoformat()},
        request_id=actor.request_id,
    )


@transaction.atomic(durable=True)
def _run_batch(batch_size: int, result: SweepResult) -> tuple[int, int]:
    now = timezone.now()
    rows = list(
        _claim(
            PendingDeactivation.objects.filter(state=DeactivationState.PENDING, due_at__lte=now)
        ).order_by("due_at", "id")[:batch_size]
    )
    return len(rows), _run_rows(rows, result)


def run_due_deactivations(*, batch_size: int | None = None) -> SweepResult:
    """Run every deactivation that is due, one transaction per batch. Safe to run any number
    of times at once: each row runs once."""
    batch_size = batch_size or settings.GATEHOUSE_DEACTIVATION_BATCH_SIZE
    result = SweepResult()
    while True:
        claimed, ran = _run_batch(batch_size, result)
        # A short batch means nothing else is due; a batch where nothing ran means the rest
        # belong to users that requests hold right now: leave them to the next sweep.
        if claimed < batch_size or ran == 0:
            return result


@transaction.atomic(durable=True)
def run_deactivation(row_id: int) -> str | None:
    """Run one deactivation if it is due and still pending (a Celery ETA message's work).
    Returns its new state, or None when there was nothing to do."""
    rows = list(
        _claim(
            PendingDeactivation.objects.filter(
                pk=row_id, state=DeactivationState.PENDING, due_at__lte=timezone.now()
            )
        )
    )
    if not rows:
        return None
    row = rows[0]
    user = _claim(User.objects.filter(pk=row.user_id)).first()
    if user is None:
        return None  # a request holds the user; the sweep takes the row later
    return services._run_deactivation(
        row, user, actor=services.requester_of(row), now=timezone.now(),
        held=guard_is_tripped(row.provider_id),
    )  # fmt: skip


# --- the mass-deprovisioning guard -----------------------------------------------------------


def guard_is_tripped(provider_id: int | None) -> bool:
    if provider_id is None:
        return False
    return DeprovisionGuard.objects.filter(
        provider_id=provider_id, state=GuardState.TRIPPED
    ).exists()


def guard_reading_sql(provider_id: int, now) -> tuple[str, list]:
    """The guard's reading: one row, whether the provider's guard is tripped and how many
    users it deprovisioned since the window started (or since its guard was last resolved,
    when that is later): distinct users, and not those whose deprovision the provider itself
    cancelled (PRODUCT.md: a share of "its users"; one user switched off and on five times
    is one user, and none once back on). One statement, sent with the INSERT of the
    deprovision's row (one round trip, identity.writes.insert_then_read): it runs on every
    deprovision."""
    quote = connection.ops.quote_name
    guard = quote(DeprovisionGuard._meta.db_table)
    pending = quote(PendingDeactivation._meta.db_table)
    since = connection.ops.adapt_datetimefield_value(now - settings.GATEHOUSE_GUARD_WINDOW)
    sql = (
        f"SELECT EXISTS (SELECT 1 FROM {guard} WHERE provider_id = %s AND state = %s), "
        f"(SELECT COUNT(DISTINCT user_id) FROM {pending} WHERE provider_id = %s "
        f"AND state <> %s AND created_at > COALESCE("
        f"(SELECT MAX(resolved_at) FROM {guard} WHERE provider_id = %s AND resolved_at > %s), "
        f"%s))"
    )
    params = [provider_id, GuardState.TRIPPED, provider_id, DeactivationState.CANCELLED]
    return sql, [*params, provider_id, since, since]


def guard_holds_provider(
    provider: tuple[int | None, str],
    *,
    actor: Actor,
    now,
    scheduled: PendingDeactivation,
    reading: tuple,
) -> bool:
    """Whether the provider's deactivations are held, tripping the guard when this deprovision
    (``scheduled``, already saved) takes the provider past its threshold.

    PRODUCT.md: more than max(share x the provider's users, minimum) deprovisions within an
    hour. The hour starts again after an administrator confirms or cancels a trip, so a
    confirmed wave does not trip it again.
    """
    provider_id, provider_label = provider
    if provider_id is None:
        return False
    # ``reading``: the row of ``guard_reading_sql``, read right after ``scheduled`` was saved.
    tripped, count = reading
    if tripped:
        return True
    if count <= settings.GATEHOUSE_GUARD_MIN:  # cheap exit: below the floor it cannot trip
        return False
    since = now - settings.GATEHOUSE_GUARD_WINDOW
    resolved = DeprovisionGuard.objects.filter(
        provider_id=provider_id, resolved_at__gt=since
    ).aggregate(last=Max("resolved_at"))["last"]
    if resolved is not None:
        since = resolved
    # The provider's users when the window started: those it links now (the count its
    # provider row keeps exact in each link's transaction), plus those a SCIM DELETE took
    # out in the window (an index range, as the count of deprovisions). Counting its users,
    # and joining each deprovision of the window to its link, cost ~15 ms and ~7 ms at
    # 100,000 users, on every further deprovision of a wave past the minimum.
    from provisioning.models import Provider, RemovedProviderUser  # provisioning builds on us

    linked = Provider.objects.filter(pk=provider_id).values_list("user_count", flat=True)
    removed = RemovedProviderUser.objects.filter(provider_id=provider_id, removed_at__gt=since)
    users = (linked.first() or 0) + removed.count()
    share = math.floor(settings.GATEHOUSE_GUARD_SHARE * users)
    threshold = max(share, settings.GATEHOUSE_GUARD_MIN)
    if count <= threshold:
        return False
    try:
        with transaction.atomic():  # two requests may trip it at once: one row wins
            DeprovisionGuard.objects.create(
                provider_id=provider_id,
                provider_label=provider_label,
                window_started_at=since,
                tripped_at=now,
                deprovision_count=count,
                threshold=threshold,
            )
    except IntegrityError:
        return True
    record.audit(
        actor=actor,
        action="deprovision_guard_tripped",
        target_label=provider_label,
        deprovisions=count,
        threshold=threshold,
        users=users,
        since=since.isoformat(),
    )
    # Hold what is already scheduled for this provider, so the sync log and user_status show
    # the hold at once rather than when each row comes due.
    # Only the rows are locked (of=self): their users are read for their names, and locking
    # them too would take user locks after a row's, the reverse of every other path (a
    # SCIM write locks its user, then reads that user's open row): a deadlock.
    pending = (
        PendingDeactivation.objects.select_for_update(of=("self",))
        .filter(provider_id=provider_id, state=DeactivationState.PENDING)
        .exclude(pk=scheduled.pk)
        .select_related("user")
    )
    for row in pending:
        row.state = DeactivationState.HELD
        row.save(update_fields=["state"])
        record.sync_change(
            actor=actor,
            user_id=row.user_id,
            user_label=row.user.username,
            change=SyncChange.DEACTIVATION_HELD,
            attribute="deactivation",
            old=row.due_at.isoformat(),
            new="held",
            provider_id=provider_id,
            provider_label=provider_label,
        )
    return True


def tripped_guard(provider_id: int) -> DeprovisionGuard | None:
    return DeprovisionGuard.objects.filter(
        provider_id=provider_id, state=GuardState.TRIPPED
    ).first()


def _resolve(provider_id: int, state: str, actor: Actor) -> DeprovisionGuard:
    guard = (
        DeprovisionGuard.objects.select_for_update()
        .filter(provider_id=provider_id, state=GuardState.TRIPPED)
        .first()
    )
    if guard is None:
        raise services.LifecycleError("This provider's mass-deprovisioning guard is not tripped.")
    guard.state = state
    guard.resolved_at = timezone.now()
    guard.resolved_by = actor.label
    guard.save(update_fields=["state", "resolved_at", "resolved_by"])
    return guard


@transaction.atomic(durable=True)
def confirm_guard(provider_id: int, *, actor: Actor) -> DeprovisionGuard:
    """An administrator confirms the wave was intended: the held deactivations go back on the
    schedule with their original due times (the next sweep runs those already due)."""
    guard = _resolve(provider_id, GuardState.CONFIRMED, actor)
    released = PendingDeactivation.objects.filter(
        provider_id=provider_id, state=DeactivationState.HELD
    ).update(state=DeactivationState.PENDING)
    record.audit(
        actor=actor,
        action="deprovision_guard_confirmed",
        target_label=guard.provider_label,
        released=released,
    )
    return guard


@transaction.atomic(durable=True)
def cancel_guard(provider_id: int, *, actor: Actor) -> DeprovisionGuard:
    """An administrator cancels the wave: every deprovision of it (scheduled since the guard's
    window started) is cancelled and its user unblocked, as ``cancel_deprovision`` does. Held
    deactivations scheduled before the wave go back on the schedule."""
    guard = _resolve(provider_id, GuardState.CANCELLED, actor)
    open_rows = PendingDeactivation.objects.filter(
        provider_id=provider_id,
        state__in=(
            DeactivationState.PENDING,
            DeactivationState.HELD,
            DeactivationState.DEFERRED,
        ),
    )
    wave = open_rows.filter(created_at__gte=guard.window_started_at)
    user_ids = list(wave.values_list("user_id", flat=True))
    for user in User.objects.filter(pk__in=user_ids).order_by("pk"):
        services.cancel_deprovision(user, actor=actor)
    requeued = open_rows.filter(
        state=DeactivationState.HELD, created_at__lt=guard.window_started_at
    ).update(state=DeactivationState.PENDING)
    record.audit(
        actor=actor,
        action="deprovision_guard_cancelled",
        target_label=guard.provider_label,
        cancelled=len(user_ids),
        requeued=requeued,
    )
    return guard
