"""Provider administration: create, regenerate credentials, change the delay, delete.

Each function is one transaction that also writes its audit-log row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from identity.services import LifecycleError, check_deactivation_delay
from synclog import record
from synclog.record import Actor

from . import credentials
from .models import AuthType, Provider, ProviderUser, RemovedProviderUser, ScimGroup

logger = logging.getLogger("gatehouse.scim")


class ProviderError(ValueError):
    """A provider request that cannot be carried out; the message is for the operator."""


@dataclass(frozen=True)
class IssuedCredentials:
    """What the "SCIM Provider Created" dialog shows once, and never again."""

    provider: Provider
    secret: str

    @property
    def username(self) -> str:
        return self.provider.credential_username


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "provider"
    slug, n = base, 2
    while Provider.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def providers_named(name: str):
    """Providers whose display name is ``name`` in any case, in every script. Compared in
    Python: ``iexact`` is SQLite's LIKE, and a database in the C locale lowers ASCII only
    ("Ünïcødé" and "ünïcødé" were two providers). A deployment has a handful of them."""
    wanted = name.casefold()
    named = [
        pk for pk, known in Provider.objects.values_list("pk", "name") if known.casefold() == wanted
    ]
    return Provider.objects.filter(pk__in=named)


# Creations of providers take turns on PostgreSQL (a transaction-scoped advisory lock): the
# name check (any case, in Python) and the slug are check-then-insert, and two at once made
# "racex" and "RACEX", or failed on the slug's unique index. SQLite's writers take turns anyway.
_PROVIDER_NAMES_LOCK = 0x67617465  # "gate": the key of this advisory lock


def _names_taken_in_turn() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PROVIDER_NAMES_LOCK])


@transaction.atomic(durable=True)
def create_provider(
    *, name: str, auth_type: str, actor: Actor, deactivation_delay: timedelta | None = None
) -> IssuedCredentials:
    name = name.strip()
    if not name:
        raise ProviderError("A provider needs a display name.")
    if auth_type not in AuthType.values:
        raise ProviderError(f"Authentication must be one of: {', '.join(AuthType.values)}.")
    if any(not character.isprintable() for character in name):
        raise ProviderError("A provider's name cannot hold tabs, line breaks or other controls.")
    _names_taken_in_turn()
    if providers_named(name).exists():
        raise ProviderError(f"A provider named {name!r} already exists.")
    delay = Provider._meta.get_field("deactivation_delay").get_default()
    if deactivation_delay is not None:
        delay = _checked_delay(deactivation_delay)
    secret = credentials.generate_secret()
    provider = Provider.objects.create(
        name=name,
        slug=_unique_slug(name),
        auth_type=auth_type,
        credential_username=credentials.generate_username(name),
        secret_digest=credentials.digest(secret),
        deactivation_delay=delay,
    )
    record.audit(
        actor=actor,
        action="provider_created",
        target_label=provider.name,
        auth=auth_type,
        credential_username=provider.credential_username,
        deactivation_delay=delay,
    )
    return IssuedCredentials(provider=provider, secret=secret)


@transaction.atomic(durable=True)
def regenerate_credentials(provider: Provider, *, actor: Actor) -> IssuedCredentials:
    """A new secret, shown once; the old one stops working at commit."""
    provider = Provider.objects.select_for_update().get(pk=provider.pk)
    secret = credentials.generate_secret()
    provider.secret_digest = credentials.digest(secret)
    provider.updated_at = timezone.now()
    provider.save(update_fields=["secret_digest", "updated_at"])
    record.audit(actor=actor, action="credentials_regenerated", target_label=provider.name)
    return IssuedCredentials(provider=provider, secret=secret)


def _checked_delay(delay: timedelta) -> timedelta:
    try:
        return check_deactivation_delay(delay)
    except LifecycleError as exc:
        raise ProviderError(str(exc)) from None


@transaction.atomic(durable=True)
def set_deactivation_delay(provider: Provider, *, delay: timedelta, actor: Actor) -> Provider:
    """Already scheduled deactivations keep their due time (docs/deprovisioning.md)."""
    delay = _checked_delay(delay)
    provider = Provider.objects.select_for_update().get(pk=provider.pk)
    if provider.deactivation_delay == delay:
        return provider
    old = provider.deactivation_delay
    provider.deactivation_delay = delay
    provider.updated_at = timezone.now()
    provider.save(update_fields=["deactivation_delay", "updated_at"])
    record.audit(
        actor=actor,
        action="deactivation_delay_changed",
        target_label=provider.name,
        old=old,
        new=delay,
    )
    return provider


@transaction.atomic(durable=True)
def delete_provider(provider: Provider, *, actor: Actor) -> None:
    """Removes the provider, its groups and its links; the users it provisioned stay."""
    # Locked before it is deleted (FOR UPDATE, which a new link's foreign-key check waits
    # for): a create committing meanwhile left a link the delete had not collected, and the
    # delete failed at COMMIT while creates went on. Now such a create fails instead (its
    # view says 401). Its rows first, in the order SCIM writes lock them (a link, its
    # groups, the removal record, the provider's counters last): the provider row first
    # deadlocked with a SCIM DELETE in flight.
    for model in (ProviderUser, ScimGroup, RemovedProviderUser):
        rows = model.objects.filter(provider=provider).order_by("pk").select_for_update()
        list(rows.values_list("pk", flat=True))
    provider = Provider.objects.select_for_update().filter(pk=provider.pk).first()
    if provider is None:
        raise ProviderError("That provider was deleted already.")
    name = provider.name
    provider.delete()
    record.audit(actor=actor, action="provider_deleted", target_label=name)


def note_org_attribute_schema(provider: Provider, urn: str) -> None:
    """The extension URN ``provider`` sends the organization attribute in (an admin's own
    namespace): SCIM answers carry the attribute there from now on. Not an administrator's
    change: no audit row, ``updated_at`` kept."""
    if len(urn) > Provider._meta.get_field("org_attribute_schema").max_length:
        urn = ""  # a URN that long names no namespace an IdP uses: Gatehouse's own
    if urn.lower() == provider.org_attribute_schema.lower():
        return
    try:
        Provider.objects.filter(pk=provider.pk).update(org_attribute_schema=urn)
    except DatabaseError:  # after the write it follows: the write stands, answered as such
        logger.warning("Could not note %s's organization attribute namespace", provider.name)
        return
    provider.org_attribute_schema = urn
