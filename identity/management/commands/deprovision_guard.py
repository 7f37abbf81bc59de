"""``python manage.py deprovision_guard PROVIDER [--confirm|--cancel]``: show, confirm or cancel
a tripped mass-deprovisioning guard (docs/deprovisioning.md)."""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from identity import deactivation
from identity.models import DeactivationState, PendingDeactivation
from identity.services import LifecycleError

from ._operator import operator_actor


class Command(BaseCommand):
    help = (
        "Show a provider's mass-deprovisioning guard; --confirm runs the held deactivations, "
        "--cancel cancels the wave's deactivations and unblocks its users."
    )

    def add_arguments(self, parser):
        parser.add_argument("provider", help="the provider's display name or slug")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--confirm", action="store_true", help="deactivate the held users")
        action.add_argument("--cancel", action="store_true", help="cancel and unblock them")

    def handle(self, *args, provider: str, confirm: bool, cancel: bool, **options):
        # Looked up through the app registry: identity does not import provisioning.
        provider_model = apps.get_model("provisioning", "Provider")
        found = provider_model.objects.filter(name__iexact=provider).first()
        found = found or provider_model.objects.filter(slug=provider).first()
        if found is None:
            raise CommandError(f"No provider named {provider!r}.")
        try:
            if confirm:
                guard = deactivation.confirm_guard(found.pk, actor=operator_actor())
                result = deactivation.run_due_deactivations()
                self.stdout.write(
                    f"{guard.provider_label}: guard confirmed; "
                    f"{result.deactivated} users deactivated now, the rest when due."
                )
                return
            if cancel:
                guard = deactivation.cancel_guard(found.pk, actor=operator_actor())
                self.stdout.write(
                    f"{guard.provider_label}: guard cancelled; the wave's deactivations are "
                    "cancelled and its users unblocked."
                )
                return
        except LifecycleError as exc:
            raise CommandError(str(exc)) from None
        guard = deactivation.tripped_guard(found.pk)
        counts = dict(
            PendingDeactivation.objects.filter(provider=found)
            .values_list("state")
            .annotate(n=Count("id"))
        )
        if guard is None:
            self.stdout.write(f"{found.name}: guard not tripped.")
        else:
            self.stdout.write(
                f"{found.name}: guard TRIPPED at {guard.tripped_at.isoformat()} "
                f"({guard.deprovision_count} deprovisions since "
                f"{guard.window_started_at.isoformat()}, threshold {guard.threshold}); "
                f"{counts.get(DeactivationState.HELD, 0)} deactivations held."
            )
        self.stdout.write(f"pending deactivations: {counts.get(DeactivationState.PENDING, 0)}")
