"""``python manage.py scim_provider``: provisioning providers from the shell.

    scim_provider create --name NAME --auth basic|token [--deactivation-delay DURATION] [--json]
    scim_provider list [--json]
    scim_provider set NAME --deactivation-delay DURATION
    scim_provider regenerate NAME [--json]
    scim_provider delete NAME [--yes | --noinput]

NAME is a provider's display name (any case) or its slug. Durations: ``0``, ``30s``, ``15m``,
``12h``, ``90d``. The command only parses and prints; every change goes through
``provisioning.services``, which writes the audit row with the actor ``manage.py
scim_provider`` (a system actor).

``--json`` prints exactly one JSON value on stdout and nothing else (errors go to stderr with
a non-zero exit). ``create`` and ``regenerate`` print one object::

    {"id": 3, "name": "Okta", "base_url": "http://…/scim/v2/okta", "auth": "basic",
     "username": "okta_7f3k@host", "secret": "…"}

``username`` is null for token (Bearer) providers: the identity provider only needs the token.
The secret is shown this once; Gatehouse keeps only its digest. ``list --json`` prints an
array of providers with no secrets, digests or credential usernames.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, ProgrammingError
from django.db.models import Count

from provisioning.durations import ACCEPTED_FORMS, DurationError, format_duration, parse_duration
from provisioning.models import AuthType, Provider
from provisioning.services import (
    IssuedCredentials,
    ProviderError,
    create_provider,
    delete_provider,
    providers_named,
    regenerate_credentials,
    set_deactivation_delay,
)
from synclog.record import Actor

ACTOR_LABEL = "manage.py scim_provider"
NAME_HELP = "the provider's display name (case-insensitive) or its slug"
DELAY_HELP = f"deactivation delay: {ACCEPTED_FORMS}; from 0 (immediate) to 90 days"
JSON_CREDENTIALS_HELP = (
    'print one JSON object {"id", "name", "base_url", "auth", "username", "secret"} and nothing '
    "else; username is the HTTP Basic username, or null for token (Bearer) providers"
)


def _delay(text: str):
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise CommandError(f"--deactivation-delay: {exc}") from None


def _sqlstate(exc: Exception) -> str | None:
    return getattr(exc.__cause__, "sqlstate", None)


class Command(BaseCommand):
    help = (
        "Create, list, change, regenerate credentials of, and delete SCIM provisioning providers."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        create = actions.add_parser(
            "create",
            help="create a provider and print its SCIM base URL and credentials once",
            description="Create a provider and print its SCIM base URL and credentials once.",
        )
        create.add_argument("--name", required=True, help="display name, unique in any case")
        create.add_argument(
            "--auth",
            required=True,
            choices=AuthType.values,
            help="basic: HTTP Basic (generated username and password); token: OAuth Bearer token",
        )
        create.add_argument(
            "--deactivation-delay",
            dest="delay",
            metavar="DURATION",
            help=f"{DELAY_HELP} (default 15m)",
        )
        create.add_argument(
            "--json", dest="as_json", action="store_true", help=JSON_CREDENTIALS_HELP
        )

        listing = actions.add_parser(
            "list", help="list providers (never their secrets)", description="List providers."
        )
        listing.add_argument(
            "--json", dest="as_json", action="store_true", help="print one JSON array of providers"
        )

        change = actions.add_parser(
            "set",
            help="change a provider's deactivation delay",
            description="Change a provider's deactivation delay. Deactivations already "
            "scheduled keep their due time.",
        )
        change.add_argument("name", metavar="NAME", help=NAME_HELP)
        change.add_argument(
            "--deactivation-delay", dest="delay", metavar="DURATION", required=True, help=DELAY_HELP
        )

        regenerate = actions.add_parser(
            "regenerate",
            help="issue a new secret, print it once; the old one stops working",
            description="Issue a new secret and print it once; the old one stops working now.",
        )
        regenerate.add_argument("name", metavar="NAME", help=NAME_HELP)
        regenerate.add_argument(
            "--json", dest="as_json", action="store_true", help=JSON_CREDENTIALS_HELP
        )

        delete = actions.add_parser(
            "delete",
            help="delete a provider; the users it provisioned stay",
            description="Delete a provider, its SCIM groups and its links to users. The users "
            "it provisioned stay in Gatehouse.",
        )
        delete.add_argument("name", metavar="NAME", help=NAME_HELP)
        delete.add_argument(
            "--yes",
            "--noinput",
            "--no-input",
            dest="interactive",
            action="store_false",
            help="do not ask for confirmation",
        )

    def handle(self, *args, action: str, **options):
        self.actor = Actor.system(ACTOR_LABEL)
        try:
            getattr(self, f"_{action}")(**options)
        except ProviderError as exc:
            raise CommandError(str(exc)) from None
        except (OperationalError, ProgrammingError) as exc:
            # Unreachable, or not migrated (PostgreSQL: undefined table): one line for the
            # operator, not a traceback. Any other programming error is a defect: raised.
            if isinstance(exc, ProgrammingError) and _sqlstate(exc) != "42P01":
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(
                f"The database cannot be used ({first}). Check DATABASE_URL, and run "
                "'manage.py migrate' (make run does) before adding providers."
            ) from None

    # --- actions --------------------------------------------------------------------------

    def _create(self, *, name: str, auth: str, delay: str | None, as_json: bool, **options):
        deactivation_delay = _delay(delay) if delay is not None else None
        issued = create_provider(
            name=name, auth_type=auth, deactivation_delay=deactivation_delay, actor=self.actor
        )
        if as_json:
            self._print_json(_credentials_json(issued))
            return
        provider = issued.provider
        self.stdout.write(self.style.SUCCESS(f"SCIM provider {provider.name!r} created."))
        self._print_credentials(issued)
        self.stdout.write(f"  Deactivation delay: {format_duration(provider.deactivation_delay)}")
        self._print_shown_once()

    def _list(self, *, as_json: bool, **options):
        providers = Provider.objects.annotate(users=Count("user_links")).order_by("name")
        rows = [
            {
                "id": p.pk,
                "name": p.name,
                "slug": p.slug,
                "auth": p.auth_type,
                "base_url": p.base_url,
                "deactivation_delay": format_duration(p.deactivation_delay),
                "users": p.users,
            }
            for p in providers
        ]
        if as_json:
            self._print_json(rows)
            return
        if not rows:
            self.stdout.write("No providers.")
            return
        columns = [
            ("NAME", "name"),
            ("SLUG", "slug"),
            ("AUTH", "auth"),
            ("BASE URL", "base_url"),
            ("DELAY", "deactivation_delay"),
            ("USERS", "users"),
        ]
        widths = [max(len(title), *(len(str(r[key])) for r in rows)) for title, key in columns]
        self.stdout.write(
            "  ".join(t.ljust(w) for (t, _), w in zip(columns, widths, strict=True)).rstrip()
        )
        for row in rows:
            cells = [str(row[key]).ljust(w) for (_, key), w in zip(columns, widths, strict=True)]
            self.stdout.write("  ".join(cells).rstrip())

    def _set(self, *, name: str, delay: str, **options):
        provider = self._provider(name)
        new_delay = _delay(delay)
        old_delay = provider.deactivation_delay
        provider = set_deactivation_delay(provider, delay=new_delay, actor=self.actor)
        if old_delay == provider.deactivation_delay:
            self.stdout.write(
                f"The deactivation delay of {provider.name!r} is already "
                f"{format_duration(old_delay)}; nothing changed."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Deactivation delay of {provider.name!r}: {format_duration(old_delay)} → "
                f"{format_duration(provider.deactivation_delay)}."
            )
        )
        self.stdout.write("Deactivations already scheduled keep their due time.")

    def _regenerate(self, *, name: str, as_json: bool, **options):
        issued = regenerate_credentials(self._provider(name), actor=self.actor)
        if as_json:
            self._print_json(_credentials_json(issued))
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"New credentials for {issued.provider.name!r}; the old secret no longer works."
            )
        )
        self._print_credentials(issued)
        self._print_shown_once()

    def _delete(self, *, name: str, interactive: bool, **options):
        provider = self._provider(name)
        users = provider.user_links.count()
        if interactive:
            self.stdout.write(
                f"This deletes provider {provider.name!r} ({provider.base_url}), its SCIM groups "
                f"and mappings. Its {users} user(s) stay in Gatehouse, no longer provisioned."
            )
            try:
                typed = input("Type the provider name to confirm: ")
            except EOFError:
                typed = ""
            if typed.strip() != provider.name:
                raise CommandError("Not deleted: the name typed does not match.")
        delete_provider(provider, actor=self.actor)
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted provider {provider.name!r}. Its {users} user(s) stay in Gatehouse."
            )
        )

    # --- helpers --------------------------------------------------------------------------

    def _provider(self, name: str) -> Provider:
        """By display name in any case, else by slug (a name wins over another's slug)."""
        by_name = list(providers_named(name.strip())[:2])
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            raise CommandError(f"More than one provider is named {name!r}; use its slug.")
        provider = Provider.objects.filter(slug=name.strip()).first()
        if provider is None:
            raise CommandError(
                f"No provider named {name!r} (by display name or slug). "
                "`manage.py scim_provider list` shows them."
            )
        return provider

    def _print_credentials(self, issued: IssuedCredentials) -> None:
        provider = issued.provider
        self.stdout.write(f"  SCIM base URL: {provider.base_url}")
        if provider.auth_type == AuthType.BASIC:
            self.stdout.write(f"  Username:      {issued.username}")
            self.stdout.write(f"  Password:      {issued.secret}")
        else:
            self.stdout.write("  Username:      (bearer token: no username)")
            self.stdout.write(f"  Token:         {issued.secret}")

    def _print_shown_once(self) -> None:
        self.stdout.write(
            self.style.WARNING(
                "The secret is shown this once and will not be shown again: enter it in the "
                "identity provider now. Gatehouse keeps only its digest."
            )
        )

    def _print_json(self, value) -> None:
        self.stdout.write(json.dumps(value))


def _credentials_json(issued: IssuedCredentials) -> dict:
    provider = issued.provider
    return {
        "id": provider.pk,
        "name": provider.name,
        "base_url": provider.base_url,
        "auth": provider.auth_type,
        "username": issued.username if provider.auth_type == AuthType.BASIC else None,
        "secret": issued.secret,
    }
