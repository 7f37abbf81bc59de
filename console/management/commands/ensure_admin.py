import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from identity.models import IDENTITY_ADMIN_ROLE, Role, User


def _default_username() -> str:
    """admin@<console host>, or admin@gatehouse.local when the host is no mail domain
    (localhost, an IP address)."""
    username = f"admin@{settings.GATEHOUSE_HOST}"
    try:
        validate_email(username)
    except ValidationError:
        return "admin@gatehouse.local"
    return username if "." in settings.GATEHOUSE_HOST else "admin@gatehouse.local"


class Command(BaseCommand):
    help = "Create the first console administrator if there is none, and print its sign-in once."

    def add_arguments(self, parser):
        parser.add_argument(
            "--username", default="", help="an email address (default: admin@<console host>)"
        )

    @transaction.atomic
    def handle(self, *args, username: str, **options):
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An administrator already exists; no sign-in printed.")
            return
        username = username or _default_username()
        password = secrets.token_urlsafe(18)
        try:
            admin = User.objects.create_superuser(username, password)  # validates the email
        except ValidationError:
            raise CommandError(f"--username {username!r} is not an email address.") from None
        admin.roles.add(Role.objects.get(name=IDENTITY_ADMIN_ROLE))
        self.stdout.write(
            self.style.SUCCESS("First administrator created. This password is shown only once:")
        )
        self.stdout.write(f"  username: {username}\n  password: {password}")
