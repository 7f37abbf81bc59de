"""Who pushes: provisioning providers, the users and groups each one provisioned."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from identity.models import User
from identity.services import LifecycleError, check_deactivation_delay


class AuthType(models.TextChoices):
    BASIC = "basic", "API credentials (HTTP Basic)"
    TOKEN = "token", "OAuth token (Bearer)"


def validate_deactivation_delay(value: timedelta) -> None:
    """Model-field form of the rule in ``identity.services.check_deactivation_delay``."""
    try:
        check_deactivation_delay(value)
    except LifecycleError as exc:
        raise ValidationError(str(exc), code="invalid_deactivation_delay") from None


def default_deactivation_delay() -> timedelta:
    return settings.GATEHOUSE_DEFAULT_DEACTIVATION_DELAY


class Provider(models.Model):
    name = models.CharField("display name", max_length=200, unique=True)
    slug = models.SlugField(max_length=80, unique=True, help_text="The SCIM base URL's last part.")
    auth_type = models.CharField(max_length=10, choices=AuthType.choices)
    credential_username = models.CharField(max_length=254, unique=True)
    # HMAC-SHA-256 of the secret keyed by GATEHOUSE_CREDENTIAL_KEY (provisioning/credentials.py).
    secret_digest = models.CharField(max_length=64)
    deactivation_delay = models.DurationField(
        default=default_deactivation_delay, validators=[validate_deactivation_delay]
    )
    # Maintained by provisioning.user_sync in the same transaction as each link change, and
    # read for free with the credential check: an unfiltered SCIM list needs no COUNT(*) scan
    # (provisioning/scim/views.py), and ``user_removals`` tells when list positions shifted.
    user_count = models.PositiveIntegerField(default=0, editable=False)
    user_removals = models.PositiveIntegerField(default=0, editable=False)
    # The extension URN this provider sends the organization attribute (c42OrgName) in, when
    # it is an admin's own namespace (Okta's, PingOne's): answers carry it there, where the
    # IdP reads it back. Empty: Gatehouse's own extension.
    org_attribute_schema = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # Set by the SCIM view answering a request, when the base URL is not configured
    # (settings.GATEHOUSE_BASE_URL_FROM_REQUEST): "http(s)://host[:port]" it came to.
    request_root: str | None = None

    @property
    def base_url(self) -> str:
        return f"{self.request_root or settings.GATEHOUSE_BASE_URL}/scim/v2/{self.slug}"


class ProviderUser(models.Model):
    """The link between a provider and a user it provisioned: the IdP's view of that user.

    A user is provisioned by at most one provider (OneToOne), so "a provider sees only its own
    users" is a join on this table. Deleting the link (SCIM DELETE) takes the user out of the
    provider's view; the person stays, blocked and scheduled for deactivation.
    """

    # No index of its own: the two indexes below lead with it (every create paid for three).
    provider = models.ForeignKey(
        Provider, on_delete=models.CASCADE, related_name="user_links", db_index=False
    )
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="provider_link")
    scim_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    external_id = models.CharField(max_length=255, blank=True)
    org_attribute = models.CharField(
        max_length=200, blank=True, help_text="The organization attribute the IdP last sent."
    )
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change (ETag).")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Listing pages walk this index: scoping, ordering and counting stay in SQL.
            models.Index(fields=["provider", "id"], name="provideruser_provider_id"),
            # externalId lookups (Entra, Okta): the unique index below is partial, and a
            # prepared statement's generic plan cannot prove its condition from a parameter.
            models.Index(fields=["provider", "external_id"], name="provideruser_external_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "external_id"],
                condition=~models.Q(external_id=""),
                name="provideruser_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} → {self.user}"


class RemovedProviderUser(models.Model):
    """Which provider last removed (SCIM DELETE) a user: only that provider may take the
    user back by pushing the same userName again. Without it, any provider could claim a
    person another provider deprovisioned."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="+")
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="removed_from")
    removed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The deprovision guard counts a provider's removals of the last hour.
            models.Index(fields=["provider", "removed_at"], name="removeduser_provider_date"),
        ]

    def __str__(self) -> str:
        return f"{self.user} removed by {self.provider}"


class ScimGroup(models.Model):
    """A group pushed by a provider (``/Groups``), scoped to it."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="groups")
    scim_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    display_name = models.CharField(max_length=255)
    external_id = models.CharField(max_length=255, blank=True)
    members = models.ManyToManyField(User, through="GroupMembership", related_name="scim_groups")
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["provider", "id"], name="scimgroup_provider_id"),
            models.Index(Lower("display_name"), name="scimgroup_display_name_ci"),
        ]
        constraints = [
            # As for users: Entra looks a group up by externalId and refuses several answers.
            models.UniqueConstraint(
                fields=["provider", "external_id"],
                condition=~models.Q(external_id=""),
                name="scimgroup_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return self.display_name


class GroupMembership(models.Model):
    group = models.ForeignKey(ScimGroup, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="group_memberships")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "user"], name="group_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.group}"
