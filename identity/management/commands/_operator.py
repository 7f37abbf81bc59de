"""Shared by the operator commands: who is acting, and finding a user by username."""

import getpass

from django.core.management.base import CommandError

from identity.models import User
from synclog.models import ActorKind
from synclog.record import Actor


def operator_actor() -> Actor:
    """An operator at the shell is an administrator; the audit log names their OS account."""
    try:
        name = getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        name = "unknown"
    return Actor(kind=ActorKind.ADMINISTRATOR, label=f"{name} (manage.py)")


def user_by_username(username: str) -> User:
    try:
        return User.objects.get(username__ci_exact=username)
    except User.DoesNotExist:
        raise CommandError(f"No user named {username!r}.") from None
