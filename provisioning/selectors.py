"""Reads the SCIM service and console pages share. Scoped by provider in SQL.

SECURITY BOUNDARY: every SCIM read and write of users or groups starts from one of these
querysets, so a provider can never see or touch another provider's or a local user's data.
"""

from django.db.models import QuerySet

from .models import Provider, ProviderUser, ScimGroup


def provider_users(provider: Provider) -> QuerySet[ProviderUser]:
    return ProviderUser.objects.filter(provider=provider)


def provider_groups(provider: Provider) -> QuerySet[ScimGroup]:
    return ScimGroup.objects.filter(provider=provider)
