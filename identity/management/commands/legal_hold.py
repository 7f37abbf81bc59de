"""``python manage.py legal_hold USERNAME --place|--release``."""

from django.core.management.base import BaseCommand, CommandError

from identity import services

from ._operator import operator_actor, user_by_username


class Command(BaseCommand):
    help = (
        "Place or release a user's legal hold. Releasing deactivates the user at once if the "
        "hold deferred its deactivation."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--place", action="store_true", help="place the user on legal hold")
        action.add_argument("--release", action="store_true", help="release the legal hold")

    def handle(self, *args, username: str, place: bool, release: bool, **options):
        user = user_by_username(username)
        try:
            if place:
                user = services.place_legal_hold(user, actor=operator_actor())
            else:
                user = services.release_legal_hold(user, actor=operator_actor())
        except services.LifecycleError as exc:
            raise CommandError(str(exc)) from None
        hold = "on legal hold" if user.legal_hold else "not on legal hold"
        self.stdout.write(f"{user.username}: {hold}, status {user.status}")
