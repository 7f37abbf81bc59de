"""What happened: one row per provisioning change (sync log), per administrative or
provisioning event (audit log), and per rejected SCIM request.

synclog imports no other app. Rows keep frozen labels and plain ids, not foreign keys, so the
history survives the deletion of the provider or user it names.
"""

from django.db import models


class ActorKind(models.TextChoices):
    PROVIDER = "provider", "Provisioning provider"
    ADMINISTRATOR = "administrator", "Administrator"
    SYSTEM = "system", "System"


class SyncChange(models.TextChoices):
    USER_ADDED = "user_added", "User added"
    ATTRIBUTE_UPDATED = "attribute_updated", "Attribute updated"
    USER_BLOCKED = "user_blocked", "User blocked"
    USER_UNBLOCKED = "user_unblocked", "User unblocked"
    DEACTIVATION_SCHEDULED = "deactivation_scheduled", "Deactivation scheduled"
    DEACTIVATION_CANCELLED = "deactivation_cancelled", "Deactivation cancelled"
    DEACTIVATION_DEFERRED = "deactivation_deferred", "Deactivation deferred (legal hold)"
    DEACTIVATION_HELD = "deactivation_held", "Deactivation held (mass-deprovisioning guard)"
    USER_DEACTIVATED = "user_deactivated", "User deactivated"
    USER_REACTIVATED = "user_reactivated", "User reactivated"
    USER_REMOVED = "user_removed", "User removed from provider"
    ORGANIZATION_CHANGED = "organization_changed", "Organization changed"
    ROLES_CHANGED = "roles_changed", "Roles changed"
    GROUP_MEMBERSHIP_CHANGED = "group_membership_changed", "Group membership changed"
    GROUP_ADDED = "group_added", "Group added"
    GROUP_UPDATED = "group_updated", "Group updated"
    GROUP_REMOVED = "group_removed", "Group removed"


class SyncLogEntry(models.Model):
    created_at = models.DateTimeField(db_index=True)
    # Indexed by synclog_provider_date, which leads with it: a second index only cost writes.
    provider_id = models.BigIntegerField(null=True)
    provider_label = models.CharField(max_length=200)
    user_id = models.BigIntegerField(null=True, db_index=True)
    user_label = models.CharField(max_length=254)
    change_type = models.CharField(max_length=40, choices=SyncChange.choices)
    attribute = models.CharField(max_length=100, blank=True)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["provider_id", "-created_at"], name="synclog_provider_date")
        ]
        verbose_name_plural = "sync log entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.user_label} {self.change_type}"


class AuditLogEntry(models.Model):
    created_at = models.DateTimeField(db_index=True)
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices)
    actor_label = models.CharField(max_length=254)
    action = models.CharField(max_length=60, db_index=True)
    target_label = models.CharField(max_length=254, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit log entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"


class RejectedRequest(models.Model):
    """A SCIM request the service refused, kept so an administrator sees why a push failed."""

    created_at = models.DateTimeField(db_index=True)
    provider_id = models.BigIntegerField(null=True, db_index=True)
    provider_label = models.CharField(max_length=200)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status = models.PositiveSmallIntegerField()
    scim_type = models.CharField(max_length=40, blank=True)
    detail = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.provider_label} {self.status}"
