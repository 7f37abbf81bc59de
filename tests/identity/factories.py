import factory

from identity.models import Organization, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.LazyAttribute(lambda u: u.username)
    given_name = "Ada"
    family_name = "Lovelace"
    organization = factory.LazyFunction(lambda: Organization.objects.default())
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    parent = factory.LazyFunction(lambda: Organization.objects.default())


class ProviderFactory(factory.django.DjangoModelFactory):
    """A provisioning provider, for lifecycle tests (identity services take its id and delay)."""

    class Meta:
        model = "provisioning.Provider"

    name = factory.Sequence(lambda n: f"Okta {n}")
    slug = factory.Sequence(lambda n: f"okta-{n}")
    auth_type = "basic"
    credential_username = factory.Sequence(lambda n: f"okta_{n}@gatehouse.example.com")
    secret_digest = "0" * 64


def provisioned_user(provider, **fields) -> User:
    """A user linked to ``provider``, as a SCIM create leaves it."""
    from django.db.models import F

    from provisioning.models import Provider, ProviderUser

    user = UserFactory(**fields)
    ProviderUser.objects.create(provider=provider, user=user)
    # provisioning.user_sync keeps the provider's count with each link it writes.
    Provider.objects.filter(pk=provider.pk).update(user_count=F("user_count") + 1)
    return user


def provider_actor(provider, request_id: str = "req-1"):
    """The actor the SCIM layer passes for a request authenticated as ``provider``."""
    from synclog.models import ActorKind
    from synclog.record import Actor

    return Actor(
        kind=ActorKind.PROVIDER,
        label=provider.credential_username,
        provider_id=provider.pk,
        provider_label=provider.name,
        request_id=request_id,
    )
