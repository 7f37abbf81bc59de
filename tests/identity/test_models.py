import pytest
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from identity.models import Organization, Role, User, UserStatus
from tests.identity.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

SEEDED_ROLES = {
    "Desktop User",
    "PROe User",
    "Agent User",
    "Identity Management Administrator",
    "Customer Cloud Admin",
    "Security Administrator",
    "Legal Hold Administrator",
    "Audit Log Viewer",
    "Org Admin",
    "Org Help Desk",
}


def test_default_organization_exists_once():
    root = Organization.objects.default()
    assert root.parent is None
    assert Organization.objects.filter(is_default=True).count() == 1


def test_default_organization_cannot_be_deleted():
    root = Organization.objects.default()
    with pytest.raises(ProtectedError), transaction.atomic():
        root.delete()
    with pytest.raises(ProtectedError), transaction.atomic():
        Organization.objects.all().delete()
    assert Organization.objects.filter(pk=root.pk).exists()


def test_second_root_is_rejected_by_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        Organization.objects.create(name="Another root", parent=None)


def test_other_organizations_can_be_deleted():
    org = OrganizationFactory()
    org.delete()
    assert not Organization.objects.filter(pk=org.pk).exists()


def test_roles_are_seeded():
    assert SEEDED_ROLES <= set(Role.objects.values_list("name", flat=True))


def test_default_roles_are_inherited_when_an_organization_has_none():
    root = Organization.objects.default()
    child = OrganizationFactory(parent=root)
    grandchild = OrganizationFactory(parent=child)
    assert [r.name for r in grandchild.effective_default_roles()] == ["Desktop User"]
    child.default_roles.set([Role.objects.get(name="Agent User")])
    assert [r.name for r in grandchild.effective_default_roles()] == ["Agent User"]


def test_username_is_unique_case_insensitively_in_the_database():
    UserFactory(username="Ada.Lovelace@Example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(
            username="ada.lovelace@example.COM", organization=Organization.objects.default()
        )
    assert User.objects.filter(username__iexact="ada.lovelace@example.com").count() == 1


def test_username_must_be_an_email():
    with pytest.raises(Exception, match="valid email"):
        User.objects.create_user("not-an-email")


def test_country_must_be_alpha_2():
    user = UserFactory.build(country="USA", organization=Organization.objects.default())
    with pytest.raises(Exception, match="alpha-2"):
        user.full_clean()
    user.country = "US"
    user.full_clean(exclude=["password"])


@pytest.mark.parametrize("status", [UserStatus.BLOCKED, UserStatus.DEACTIVATED])
def test_blocked_or_deactivated_user_is_not_active(status):
    assert UserFactory(status=status).is_active is False
    assert UserFactory().is_active is True
