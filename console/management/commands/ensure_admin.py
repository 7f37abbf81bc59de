import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from identity.models import IDENTITY_ADMIN_ROLE, Role, User


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
        if username:
            try:
                validate_email(username)
            except ValidationError:
                raise CommandError(f"--username {username!r} is not an email address.") from None
        else:
            username = f"admin@{settings.GATEHOUSE_HOST}"
            try:
                validate_email(username)
                if "." not in settings.GATEHOUSE_HOST:
                    raise ValidationError("localhost")
            except ValidationError:  # localhost, an IP address: not a mail domain
                username = "admin@gatehouse.local"
        password = secrets.token_urlsafe(18)
        admin = User.objects.create_superuser(username, password)
        admin.roles.add(Role.objects.get(name=IDENTITY_ADMIN_ROLE))
        self.stdout.write(
            self.style.SUCCESS("First administrator created. This password is shown only once:")
        )
        self.stdout.write(f"  username: {username}\n  password: {password}")
