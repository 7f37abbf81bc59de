"""A user's lifecycle: deprovision (block now, deactivate later), cancel, deactivate, reactivate,
block, unblock and legal hold (PRODUCT.md "User status", "Deprovisioning").

Each public function is one state change: it locks the user, writes it, its sync-log rows and
its audit row in one transaction, and returns early, writing nothing, when the target state
already holds. The sweep that runs due deactivations and the mass-deprovisioning guard live in
``identity/deactivation.py``; the rule that decides what a due deactivation does is
``_run_deactivation`` below, shared by both.

Sync-log rows are written for every status and schedule change, whoever makes it, with the
provider of the user (so a provider's sync log tells each of its users' whole story); the audit
log says who acted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.utils import timezone

from synclog import record
from synclog.models import SyncChange
from synclog.record import Actor

from .models import (
    OPEN_DEACTIVATION_STATES,
    DeactivationState,
    PendingDeactivation,
    User,
    UserStatus,
)
from .prepared import CompiledQuery
from .writes import insert, insert_then_read, update_columns, update_columns_later

logger = logging.getLogger(__name__)

# Delays up to this long also get a Celery ETA message so the deactivation runs on time rather
# than at the next sweep. Longer ones rely on the sweep alone: Redis redelivers unacknowledged
# messages after its visibility timeout (1 hour), and a worker holds ETA messages in memory.
ETA_MESSAGE_MAX_DELAY = timedelta(minutes=50)


class LifecycleError(ValueError):
    """A status change that cannot be carried out; the message is for the operator."""


# --- helpers ---------------------------------------------------------------------------------


def check_deactivation_delay(delay: timedelta) -> timedelta:
    """PRODUCT.md: from 0 (immediate) up to 90 days; anything else is refused."""
    if not isinstance(delay, timedelta) or not (
        timedelta(0) <= delay <= settings.GATEHOUSE_MAX_DEACTIVATION_DELAY
    ):
        raise LifecycleError(
            f"The deactivation delay must be between 0 (immediate) and 90 days, got {delay}."
        )
    return delay


def _locked(user: User, *, locked: bool = False) -> User:
    """The user, row-locked for this transaction. ``locked=True``: the caller already locked
    this very instance in the current transaction (the SCIM views lock a link and its user
    together), so it is not fetched a second time."""
    if locked:
        return user
    return User.objects.select_for_update(no_key=True).get(pk=user.pk)  # selectors.py


_OPEN_DEACTIVATION = CompiledQuery(
    lambda: (
        PendingDeactivation.objects.select_for_update()
        .filter(user_id=-1, state__in=OPEN_DEACTIVATION_STATES)
        .order_by()
    ),
    -1,
)


# "The caller has not read the user's open deactivation": read it here.
UNREAD = object()


def _open_deactivation(user: User, already=UNREAD) -> PendingDeactivation | None:
    """The user's open (pending, deferred or held) deactivation, row-locked; the partial
    unique constraint guarantees at most one. The ORM's SQL compiled once per process: every
    SCIM ``active=true`` for a blocked user reads it. ``already``: what the caller read of
    it, row-locked, after locking the user in this transaction (the SCIM views read it with
    the user, provisioning.selectors), so it is not read again."""
    if already is not UNREAD:
        if already is not None and already.user_id != user.pk:
            raise ValueError("an open deactivation of another user")
        return already
    return _OPEN_DEACTIVATION.first_instance(user.pk)


def _provider_of(
    user: User, actor: Actor, row: PendingDeactivation | None = None
) -> tuple[int | None, str]:
    """The provider a sync row is filed under: the acting provider, else the one that scheduled
    the deactivation, else the one that provisioned the user."""
    if actor.provider_id is not None:
        return actor.provider_id, actor.provider_label
    if row is not None and (row.provider_id is not None or row.provider_label):
        return row.provider_id, row.provider_label
    try:
        link = user.provider_link
    except ObjectDoesNotExist:
        return None, ""
    return link.provider_id, link.provider.name


def _sync_all(user: User, actor: Actor, provider: tuple[int | None, str], changes) -> None:
    """Several sync rows of one status change in one INSERT: ``(change, attribute, old, new)``."""
    record.sync_changes(
        actor=actor,
        user_id=user.pk,
        user_label=user.username,
        changes=changes,
        provider_id=provider[0],
        provider_label=provider[1],
    )


def _sync(
    user: User,
    actor: Actor,
    change: SyncChange,
    provider: tuple[int | None, str],
    *,
    attribute: str = "status",
    old=None,
    new=None,
) -> None:
    _sync_all(user, actor, provider, [(change, attribute, old, new)])


def _set_status(user: User, status: str, now) -> None:
    # Through synclog.later (in a SCIM write, at the end of its work; elsewhere at once):
    # the row is locked, and the services answer from the instance, never re-read it.
    update_columns_later(user, status=status, updated_at=now)


def _close(row: PendingDeactivation, state: str, now, *, deferred: bool = False) -> None:
    """``deferred``: nothing in the request reads the row's state again, so the UPDATE goes
    through synclog.later (it cannot fail: a closed row is outside the partial unique
    constraint on open ones)."""
    finished = state in (DeactivationState.DONE, DeactivationState.CANCELLED)
    update = update_columns_later if deferred else update_columns
    update(row, state=state, finished_at=now if finished else None)


def requester_of(row: PendingDeactivation) -> Actor:
    """Who a scheduled deactivation acts for: the provider credential that asked for it.
    PRODUCT.md "Audit log": provisioning events name the provider's credential username."""
    return Actor(
        kind=row.requested_by_kind,
        label=row.requested_by,
        provider_id=row.provider_id,
        provider_label=row.provider_label,
        request_id=row.request_id,
    )


def due_outcome(user: User, *, held: bool) -> str:
    """What a deactivation that is due now does: the one rule, for the one-row path below and
    the sweep's bulk path (identity/deactivation.py).

    - the provider's mass-deprovisioning guard is tripped → held, the user stays blocked;
    - the user is on legal hold → deferred, the user stays blocked (PRODUCT.md);
    - otherwise the user is deactivated.
    """
    if held:
        return DeactivationState.HELD
    if user.legal_hold:
        return DeactivationState.DEFERRED
    return DeactivationState.DONE


_NOT_NOW = {
    DeactivationState.HELD: (SyncChange.DEACTIVATION_HELD, "held"),
    DeactivationState.DEFERRED: (SyncChange.DEACTIVATION_DEFERRED, "deferred (legal hold)"),
}


def _run_deactivation(
    row: PendingDeactivation, user: User, *, actor: Actor, now, held: bool
) -> str:
    """Run a deactivation that is due now, on a locked user and row, as ``due_outcome`` says.
    Returns the row's new state."""
    provider = _provider_of(user, actor, row)
    outcome = due_outcome(user, held=held)
    if outcome in _NOT_NOW:
        # Held by the guard or deferred by legal hold: the user stays (or becomes) blocked.
        change, label = _NOT_NOW[outcome]
        if user.status == UserStatus.ACTIVE:
            _set_status(user, UserStatus.BLOCKED, now)
            _sync(user, actor, SyncChange.USER_BLOCKED, provider, old="active", new="blocked")
        _close(row, outcome, now)
        _sync(
            user, actor, change, provider, attribute="deactivation",
            old=row.due_at.isoformat(), new=label,
        )  # fmt: skip
        return outcome
    old = user.status
    _set_status(user, UserStatus.DEACTIVATED, now)
    _close(row, DeactivationState.DONE, now)
    _sync(user, actor, SyncChange.USER_DEACTIVATED, provider, old=old, new="deactivated")
    record.audit(
        actor=actor,
        action="user_deactivated",
        target_label=user.username,
        scheduled_at=row.created_at.isoformat(),
        due_at=row.due_at.isoformat(),
    )
    return DeactivationState.DONE


# Nudges already queued by this process, by due-time bucket: a wave of deprovisions (or an IdP
# flipping ``active``) sends one message per bucket, not one per user. Publishing cost more
# than the rest of a PATCH (about 8 ms on the SQLite broker).
ETA_NUDGE_BUCKET_SECONDS = 5
_nudged_buckets: set[int] = set()
_nudged_lock = threading.Lock()  # the web server runs requests on several threads


def _send_eta_message(due_at, delay: timedelta) -> None:
    """After commit: ask a worker to sweep at the end of the due time's 5-second bucket, so a
    deactivation runs on time (at most 5 s late) rather than at the next periodic sweep.

    Only a nudge: the rows decide, and the periodic sweep runs them anyway if it is lost. So
    nothing here may fail the request, whose change has already committed.
    """
    if delay > ETA_MESSAGE_MAX_DELAY:
        return
    try:
        from .tasks import run_due_deactivations  # tasks import services; import here

        bucket = math.ceil(due_at.timestamp() / ETA_NUDGE_BUCKET_SECONDS)
        with _nudged_lock:
            if bucket in _nudged_buckets:
                return
        eta = datetime.fromtimestamp(bucket * ETA_NUDGE_BUCKET_SECONDS, tz=UTC)
        run_due_deactivations.apply_async(eta=eta, retry=False)
        with _nudged_lock:
            if len(_nudged_buckets) > 10_000:  # forget buckets that have passed
                current = math.ceil(time.time() / ETA_NUDGE_BUCKET_SECONDS)
                _nudged_buckets.difference_update([b for b in _nudged_buckets if b < current])
            _nudged_buckets.add(bucket)
    except Exception:  # a broker outage must not fail the request that already committed
        logger.warning("could not queue a deactivation sweep for %s; the periodic one will", due_at)


# --- provider-facing (called inside the SCIM layer's transaction) -----------------------------


def deprovision(
    user: User,
    *,
    actor: Actor,
    delay: timedelta,
    locked: bool = False,
    open_row=UNREAD,
    at=None,
) -> User:
    """The provider said active=false, or DELETEd the user: block now and schedule the
    deactivation at now + ``delay``; a delay of 0 deactivates now.

    No-op when the user is already deactivated or already has a scheduled (pending, deferred or
    held) deactivation. A user an administrator blocked by hand gets the schedule, with no
    second "blocked" row. Deprovisions count towards the provider's mass-deprovisioning guard.
    """
    # Checked before the transaction: with savepoint=False an error raised inside would break
    # the caller's transaction, and a bad delay is the caller's input error to report.
    check_deactivation_delay(delay)
    if open_row is not UNREAD and not locked:
        raise ValueError("open_row is only valid for a user the caller has locked")
    return _deprovision(user, actor=actor, delay=delay, locked=locked, open_row=open_row, at=at)


@transaction.atomic(savepoint=False)
def _deprovision(
    user: User, *, actor: Actor, delay: timedelta, locked: bool, open_row=UNREAD, at=None
) -> User:
    # the guard builds on these services
    from .deactivation import guard_holds_provider, guard_reading_sql

    user = _locked(user, locked=locked)
    if user.status == UserStatus.DEACTIVATED:
        return user
    # An open (pending, deferred or held) deactivation always comes with a blocked user: every
    # path that opens one blocks, and every path that unblocks closes it. So only a blocked
    # user needs the lookup. Should that ever not hold (a row edited by hand), the partial
    # unique constraint refuses a second open row and this is a no-op, as the lookup says.
    if user.status == UserStatus.BLOCKED and _open_deactivation(user, open_row) is not None:
        return user
    now = at or timezone.now()
    provider = _provider_of(user, actor)
    row = PendingDeactivation(
        user=user,
        provider_id=provider[0],
        provider_label=provider[1],
        requested_by_kind=actor.kind,
        requested_by=actor.label,
        request_id=actor.request_id,
        created_at=now,
        due_at=now + delay,
    )
    if provider[0] is None:  # no provider, no guard
        inserted, reading = insert(row, ignore_conflicts=True), None
    else:  # the guard's reading comes back with the row's INSERT
        inserted, reading = insert_then_read(row, *guard_reading_sql(provider[0], now))
    if not inserted:
        return user
    held = reading is not None and guard_holds_provider(
        provider, actor=actor, now=now, scheduled=row, reading=reading
    )
    old = user.status
    if delay == timedelta(0):
        if _run_deactivation(row, user, actor=actor, now=now, held=held) == DeactivationState.DONE:
            return user  # "user_deactivated" says it all
        # Blocked and deferred or held: say so below.
    else:
        changes = []
        if old == UserStatus.ACTIVE:
            _set_status(user, UserStatus.BLOCKED, now)
            changes.append((SyncChange.USER_BLOCKED, "status", old, "blocked"))
        due = row.due_at.isoformat()
        changes.append((SyncChange.DEACTIVATION_SCHEDULED, "deactivation", None, due))
        if held:
            _close(row, DeactivationState.HELD, now)
            changes.append((SyncChange.DEACTIVATION_HELD, "deactivation", due, "held"))
        _sync_all(user, actor, provider, changes)
        if not held:
            transaction.on_commit(lambda: _send_eta_message(row.due_at, delay))
    record.audit(
        actor=actor,
        action="user_deprovisioned",
        target_label=user.username,
        old=old,
        new=user.status,
        due_at=row.due_at.isoformat(),
    )
    return user


@transaction.atomic(savepoint=False)
def cancel_deprovision(user: User, *, actor: Actor, locked: bool = False) -> User:
    """Cancel the user's scheduled (pending, deferred or held) deactivation and unblock it:
    the provider said active=true during the delay, or an administrator unblocked the user.

    No-op when nothing is scheduled (a user an administrator blocked by hand stays blocked
    when its provider resends active=true).
    """
    user = _locked(user, locked=locked)
    row = _open_deactivation(user)
    if row is None:
        return user
    return _cancel(user, row, actor=actor)


def _cancel(user: User, row: PendingDeactivation, *, actor: Actor) -> User:
    """``cancel_deprovision`` on a locked user and its locked open row."""
    now = timezone.now()
    provider = _provider_of(user, actor, row)
    was = row.state
    _close(row, DeactivationState.CANCELLED, now, deferred=True)
    changes = [
        (
            SyncChange.DEACTIVATION_CANCELLED,
            "deactivation",
            row.due_at.isoformat() if was == DeactivationState.PENDING else was,
            "cancelled",
        )
    ]
    old = user.status
    if old == UserStatus.BLOCKED:
        _set_status(user, UserStatus.ACTIVE, now)
        changes.append((SyncChange.USER_UNBLOCKED, "status", old, "active"))
    _sync_all(user, actor, provider, changes)
    record.audit(
        actor=actor,
        action="deactivation_cancelled",
        target_label=user.username,
        old=old,
        new=user.status,
        deactivation=was,
    )
    return user


@transaction.atomic(savepoint=False)
def reactivate(user: User, *, actor: Actor, locked: bool = False) -> User:
    """A deactivated user becomes active again (provider active=true, or an administrator).
    No-op for a user that is not deactivated."""
    user = _locked(user, locked=locked)
    if user.status != UserStatus.DEACTIVATED:
        return user
    now = timezone.now()
    _set_status(user, UserStatus.ACTIVE, now)
    _sync(
        user, actor, SyncChange.USER_REACTIVATED, _provider_of(user, actor),
        old="deactivated", new="active",
    )  # fmt: skip
    record.audit(actor=actor, action="user_reactivated", target_label=user.username)
    return user


def apply_provider_active(
    user: User,
    *,
    active: bool,
    actor: Actor,
    delay: timedelta,
    locked: bool = False,
    open_row=UNREAD,
    at=None,
) -> User:
    """What a provider's ``active`` value means for the user (SCIM PUT/PATCH):

    - false → ``deprovision`` (no-op when already scheduled or deactivated);
    - true and a deactivation is scheduled → ``cancel_deprovision``;
    - true and deactivated → ``reactivate``;
    - true otherwise → no-op (a user blocked by hand stays blocked).

    ``locked=True``: the caller holds this user instance's row lock in its transaction.
    ``open_row``: the user's open deactivation (or None), read row-locked after that lock in
    the same transaction; only with ``locked``.
    ``at``: when a deprovision happens, for a user created inactive by the same request (its
    ``meta.lastModified`` stays its ``created``, RFC 7643 §3.1); default now.
    """
    if open_row is not UNREAD and not locked:
        raise ValueError("open_row is only valid for a user the caller has locked")
    if not active:
        return deprovision(user, actor=actor, delay=delay, locked=locked, open_row=open_row, at=at)
    return _apply_active_true(user, actor=actor, locked=locked, open_row=open_row)


@transaction.atomic(savepoint=False)
def _apply_active_true(user: User, *, actor: Actor, locked: bool, open_row=UNREAD) -> User:
    user = _locked(user, locked=locked)
    if user.status == UserStatus.DEACTIVATED:
        return reactivate(user, actor=actor, locked=True)
    if user.status == UserStatus.ACTIVE:
        return user  # an active user has no open deactivation (see _deprovision)
    row = _open_deactivation(user, open_row)
    if row is not None:
        return _cancel(user, row, actor=actor)
    return user


# --- console- and command-facing ------------------------------------------------------------


@transaction.atomic(durable=True)
def block(user: User, *, actor: Actor, reason: str = "") -> User:
    """Block by hand: the user cannot sign in; nothing is scheduled."""
    user = _locked(user)
    if user.status == UserStatus.DEACTIVATED:
        raise LifecycleError(f"{user.username} is deactivated; reactivate it first.")
    if user.status == UserStatus.BLOCKED:
        return user
    now = timezone.now()
    _set_status(user, UserStatus.BLOCKED, now)
    _sync(
        user, actor, SyncChange.USER_BLOCKED, _provider_of(user, actor),
        old="active", new="blocked",
    )  # fmt: skip
    record.audit(actor=actor, action="user_blocked", target_label=user.username, reason=reason)
    return user


@transaction.atomic(durable=True)
def unblock(user: User, *, actor: Actor) -> User:
    """Unblock by hand. PRODUCT.md: this also cancels a scheduled deactivation."""
    user = _locked(user)
    if user.status == UserStatus.DEACTIVATED:
        raise LifecycleError(f"{user.username} is deactivated; reactivate it instead.")
    row = _open_deactivation(user)
    if row is not None:
        return _cancel(user, row, actor=actor)
    if user.status == UserStatus.ACTIVE:
        return user
    now = timezone.now()
    _set_status(user, UserStatus.ACTIVE, now)
    _sync(
        user, actor, SyncChange.USER_UNBLOCKED, _provider_of(user, actor),
        old="blocked", new="active",
    )  # fmt: skip
    record.audit(actor=actor, action="user_unblocked", target_label=user.username)
    return user


@transaction.atomic(durable=True)
def deactivate(user: User, *, actor: Actor) -> User:
    """An administrator deactivates at once, with no delay (PRODUCT.md). A scheduled
    deactivation is marked done by it. Refused for a user on legal hold: release it first."""
    user = _locked(user)
    if user.status == UserStatus.DEACTIVATED:
        return user
    if user.legal_hold:
        raise LifecycleError(
            f"{user.username} is on legal hold and cannot be deactivated; release the hold first."
        )
    now = timezone.now()
    row = _open_deactivation(user)
    provider = _provider_of(user, actor, row)
    if row is not None:
        _close(row, DeactivationState.DONE, now)
    old = user.status
    _set_status(user, UserStatus.DEACTIVATED, now)
    _sync(user, actor, SyncChange.USER_DEACTIVATED, provider, old=old, new="deactivated")
    record.audit(actor=actor, action="user_deactivated", target_label=user.username, old=old)
    return user


@transaction.atomic(durable=True)
def place_legal_hold(user: User, *, actor: Actor) -> User:
    """While on legal hold a user's deactivation is deferred; the user stays blocked."""
    user = _locked(user)
    if user.legal_hold:
        return user
    user.legal_hold = True
    user.updated_at = timezone.now()
    user.save(update_fields=["legal_hold", "updated_at"])
    record.audit(actor=actor, action="legal_hold_placed", target_label=user.username)
    return user


@transaction.atomic(durable=True)
def release_legal_hold(user: User, *, actor: Actor) -> User:
    """Release the hold. PRODUCT.md: a deactivation the hold deferred runs now (unless the
    provider's mass-deprovisioning guard holds it)."""
    from .deactivation import guard_is_tripped

    user = _locked(user)
    if not user.legal_hold:
        return user
    now = timezone.now()
    user.legal_hold = False
    user.updated_at = now
    user.save(update_fields=["legal_hold", "updated_at"])
    record.audit(actor=actor, action="legal_hold_released", target_label=user.username)
    row = _open_deactivation(user)
    if row is not None and row.state == DeactivationState.DEFERRED:
        _run_deactivation(row, user, actor=actor, now=now, held=guard_is_tripped(row.provider_id))
    return user
