"""Who exists: the organization tree, the role catalogue and users (AUTH_USER_MODEL)."""

from __future__ import annotations

import secrets

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from .countries import ISO_3166_ALPHA_2
from .validators import validate_username

IDENTITY_ADMIN_ROLE = "Identity Management Administrator"


def validate_country(value: str) -> None:
    if value and value not in ISO_3166_ALPHA_2:
        raise ValidationError(
            f"{value!r} is not an ISO 3166-1 alpha-2 country code (two letters, such as US).",
            code="invalid_country",
        )


class Role(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OrganizationQuerySet(models.QuerySet):
    def default(self) -> Organization:
        return self.get(is_default=True)


class Organization(models.Model):
    name = models.CharField(max_length=200)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    is_default = models.BooleanField(default=False, editable=False)
    default_roles = models.ManyToManyField(Role, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            # PRODUCT.md: exactly one root, the default organization.
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_org"
            ),
            models.CheckConstraint(
                condition=Q(is_default=False, parent__isnull=False)
                | Q(is_default=True, parent__isnull=True),
                name="default_org_is_the_only_root",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        """How the sync log names an organization: ``Sales (orgId 42)``."""
        return f"{self.name} (orgId {self.pk})"

    def effective_default_roles(self) -> list[Role]:
        """This organization's default roles, or the nearest ancestor's when it has none."""
        org: Organization | None = self
        while org is not None:
            roles = list(org.default_roles.all())
            if roles:
                return roles
            org = org.parent
        return []


class UserStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    BLOCKED = "blocked", "Blocked"
    DEACTIVATED = "deactivated", "Deactivated"


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, username: str):
        # Sign-in is case-insensitive, as the uniqueness constraint is.
        return self.get(username__ci_exact=username)

    def create_user(self, username: str, password: str | None = None, **fields):
        """A console account: local (managed only in the console, out of every provider's
        reach) unless the caller says otherwise. Provisioned users are created by
        provisioning.user_sync, not here."""
        validate_username(username)
        fields.setdefault("is_local", True)
        fields.setdefault("email", username)
        fields.setdefault("organization", Organization.objects.default())
        user = self.model(username=username, **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, username: str, password: str | None = None, **fields):
        fields.update(is_superuser=True, is_staff=True, is_local=True)
        return self.create_user(username, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person the console manages, and the console's own sign-in account."""

    username = models.CharField(
        max_length=254,
        validators=[validate_username],
        help_text="An email address; unique regardless of case.",
    )
    email = models.EmailField(max_length=254, blank=True)
    given_name = models.CharField(max_length=150, blank=True)
    family_name = models.CharField(max_length=150, blank=True)
    display_name = models.CharField(max_length=300, blank=True)
    title = models.CharField(max_length=200, blank=True)
    department = models.CharField(max_length=200, blank=True)
    division = models.CharField(max_length=200, blank=True)
    user_type = models.CharField("employee type", max_length=100, blank=True)
    locality = models.CharField(max_length=200, blank=True)
    region = models.CharField(max_length=200, blank=True)
    country = models.CharField(max_length=2, blank=True, validators=[validate_country])
    manager = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    employee_number = models.CharField(max_length=100, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="users")
    roles = models.ManyToManyField(Role, blank=True, related_name="users")
    status = models.CharField(
        max_length=20, choices=UserStatus.choices, default=UserStatus.ACTIVE, db_index=True
    )
    legal_hold = models.BooleanField(default=False)
    is_local = models.BooleanField(
        default=False, help_text="Managed only in the console; no provider may touch it."
    )
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["id"]
        constraints = [
            # PRODUCT.md: userName unique, compared case-insensitively — in the database.
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
        ]
        indexes = [
            models.Index(fields=["external_id"], name="user_external_id"),
            models.Index(Lower("email"), name="user_email_ci"),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def is_active(self) -> bool:
        # Django's auth backends and session checks read is_active: a blocked or deactivated
        # user can never sign in (PRODUCT.md "User status").
        return self.status == UserStatus.ACTIVE

    def set_unusable_password(self) -> None:
        # Django's draws its 40 random characters one secrets.choice() (one os.urandom read)
        # at a time: 0.04 ms of every SCIM create. The same prefix, 40 characters, one read.
        self.password = UNUSABLE_PASSWORD_PREFIX + secrets.token_hex(20)

    def get_full_name(self) -> str:
        return " ".join(p for p in (self.given_name, self.family_name) if p) or self.username

    def get_short_name(self) -> str:
        return self.given_name or self.username

    @property
    def is_identity_admin(self) -> bool:
        if not self.is_active:
            return False
        if self.is_superuser:
            return True
        return self.roles.filter(name=IDENTITY_ADMIN_ROLE).exists()


class DeactivationState(models.TextChoices):
    PENDING = "pending", "Pending"
    CANCELLED = "cancelled", "Cancelled"
    DEFERRED = "deferred", "Deferred (legal hold)"
    HELD = "held", "Held (mass-deprovisioning guard)"
    DONE = "done", "Done"


# A user has at most one of these at a time; the others are history.
OPEN_DEACTIVATION_STATES = (
    DeactivationState.PENDING,
    DeactivationState.DEFERRED,
    DeactivationState.HELD,
)


class PendingDeactivation(models.Model):
    """A deactivation a provider asked for, due at ``due_at`` (PRODUCT.md "Deprovisioning").

    The schedule lives here, not in the broker: the periodic sweep (identity/tasks.py) claims
    due rows under a row lock and marks each one done in the same transaction that deactivates
    its user, so a restarted worker or broker loses none and runs none twice.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="pending_deactivations")
    # String reference: identity does not import provisioning (docs/architecture.md).
    provider = models.ForeignKey("provisioning.Provider", null=True, on_delete=models.SET_NULL)
    # Frozen at scheduling time so history reads the same after the provider is renamed or
    # deleted. requested_by is the provider's credential username (the audit log's actor).
    provider_label = models.CharField(max_length=200, blank=True)
    requested_by_kind = models.CharField(max_length=20)
    requested_by = models.CharField(max_length=254)
    request_id = models.CharField(max_length=64, blank=True)
    state = models.CharField(
        max_length=20, choices=DeactivationState.choices, default=DeactivationState.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(state__in=OPEN_DEACTIVATION_STATES),
                name="one_open_deactivation_per_user",
            ),
        ]
        indexes = [
            # The sweep's claim: WHERE state = 'pending' AND due_at <= now ORDER BY due_at.
            models.Index(
                fields=["due_at", "id"],
                condition=Q(state=DeactivationState.PENDING),
                name="deactivation_due",
            ),
            # The guard's count: users deprovisioned per provider in the last hour, not
            # cancelled. Every column it reads is in the index, so the count reads no rows.
            models.Index(
                fields=["provider", "created_at", "state", "user"],
                name="deactivation_provider_date",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.state} due {self.due_at:%Y-%m-%d %H:%M}"


class GuardState(models.TextChoices):
    TRIPPED = "tripped", "Tripped: deactivations held"
    CONFIRMED = "confirmed", "Confirmed by an administrator"
    CANCELLED = "cancelled", "Cancelled by an administrator"


class DeprovisionGuard(models.Model):
    """A trip of the mass-deprovisioning guard for one provider (PRODUCT.md "Deprovisioning").

    While a provider has a tripped row, its deactivations are held: users stay blocked and
    nothing is deactivated until an administrator confirms or cancels.
    """

    provider = models.ForeignKey(
        "provisioning.Provider", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider_label = models.CharField(max_length=200)
    state = models.CharField(max_length=20, choices=GuardState.choices, default=GuardState.TRIPPED)
    # Deprovisions counted from window_started_at to tripped_at, and the threshold they passed.
    window_started_at = models.DateTimeField()
    tripped_at = models.DateTimeField(default=timezone.now)
    deprovision_count = models.PositiveIntegerField()
    threshold = models.PositiveIntegerField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-tripped_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider"],
                condition=Q(state="tripped"),
                name="one_tripped_guard_per_provider",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_label} guard {self.state}"
