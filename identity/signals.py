"""Model invariants that a plain ``Meta.constraints`` cannot express."""

from django.db.models import ProtectedError
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from .models import Organization


@receiver(pre_delete, sender=Organization)
def keep_default_organization(sender, instance: Organization, **kwargs) -> None:
    # PRODUCT.md: one root, the default organization, always exists. pre_delete also fires for
    # queryset deletes, so neither obj.delete() nor Organization.objects.all().delete() gets by.
    if instance.is_default:
        raise ProtectedError("The default organization cannot be deleted.", {instance})
