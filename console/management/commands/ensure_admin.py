import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from identity.models import IDENTITY_ADMIN_ROLE, Role, User


class Command(BaseCommand):
    help = "Create the first console administrator if there is none, and print its sign-in once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=f"admin@{settings.GATEHOUSE_HOST}")

    @transaction.atomic
    def handle(self, *args, username: str, **options):
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An administrator already exists; no sign-in printed.")
            return
        if "." not in username.split("@")[-1]:
            username = f"{username.split('@')[0]}@gatehouse.local"  # must be a valid email
        password = secrets.token_urlsafe(18)
        admin = User.objects.create_superuser(username, password)
        admin.roles.add(Role.objects.get(name=IDENTITY_ADMIN_ROLE))
        self.stdout.write(
            self.style.SUCCESS("First administrator created. This password is shown only once:")
        )
        self.stdout.write(f"  username: {username}\n  password: {password}")
