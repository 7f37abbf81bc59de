"""``python manage.py user_status USERNAME``: a user's status, legal hold and scheduled
deactivation, for operators."""

from django.core.management.base import BaseCommand

from identity.models import OPEN_DEACTIVATION_STATES, PendingDeactivation

from ._operator import user_by_username


class Command(BaseCommand):
    help = "Show a user's status, legal hold and pending deactivation (with its due time)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        user = user_by_username(username)
        row = (
            PendingDeactivation.objects.filter(user=user, state__in=OPEN_DEACTIVATION_STATES)
            .order_by("-id")
            .first()
        )
        lines = [
            f"user:        {user.username}",
            f"status:      {user.status}",
            f"legal hold:  {'yes' if user.legal_hold else 'no'}",
        ]
        if row is None:
            lines.append("deactivation: none scheduled")
        else:
            lines += [
                f"deactivation: {row.get_state_display().lower()}",
                f"  due:       {row.due_at.isoformat()}",
                f"  scheduled: {row.created_at.isoformat()} by {row.requested_by}",
                f"  provider:  {row.provider_label or '-'}",
            ]
        self.stdout.write("\n".join(lines))
