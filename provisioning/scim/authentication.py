"""DRF authentication and throttling for the per-provider SCIM base URL.

The credential must belong to the provider named in the URL: a valid secret of provider A
presented at ``/scim/v2/<B>/`` is refused. Secrets are compared as HMAC digests in constant
time (provisioning/credentials.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import logging
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from django.db import DatabaseError, connection
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.throttling import SimpleRateThrottle

from identity.prepared import CompiledQuery, PreparedColumns
from provisioning import credentials
from provisioning.mapping import provider_with_placement
from provisioning.models import AuthType, Provider


class ProviderPrincipal:
    """``request.user`` for a SCIM request: the provider, never a console account."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, provider: Provider):
        self.provider = provider

    def __str__(self) -> str:
        return self.provider.credential_username


logger = logging.getLogger("gatehouse.scim")

_PROVIDER_BY_SLUG = CompiledQuery(lambda: Provider.objects.filter(slug="?").order_by(), "?")


def provider_by_slug(slug: str) -> Provider | None:
    """The provider of a SCIM base URL. Runs on every SCIM request: the ORM's SQL compiled
    once per process (identity/prepared.py)."""
    return _PROVIDER_BY_SLUG.first_instance(slug)


# slug -> the provider an earlier request authenticated as: (id, auth type, credential
# username, secret digest). Kept per process, only after a credential was accepted, so that
# a GET presenting that same credential may send its read with the provider's (below). A
# slug could come to name another provider, or the secret be regenerated: the provider row
# read in the same round trip is what authentication checks, and its id what the view
# compares before it uses anything read ahead.
_known: dict[str, tuple[int, str, str, str]] = {}


# slug -> (the provider's column values, its placement) as a POST /Users of this process
# last read and authenticated them: a later create presenting that same credential may
# trust them instead of reading them first (PostgreSQL only), because its write checks
# them (user_sync.create_user, ``assumed``).
_assumable: dict[str, tuple[list, Any]] = {}


def assumed_provider(view, slug: str):
    """(provider, placement) as an earlier create read them, when the request presents the
    credential they hold; else None. Nothing is read: the create's write checks them."""
    entry = _assumable.get(slug)
    if entry is None or connection.vendor != "postgresql":
        return None
    values, placement = entry
    # An instance of its own per request (views set request_root on theirs).
    provider = Provider.from_db(connection.alias, _provider_columns().attnames, list(values))
    header = get_authorization_header(view.request)
    if credential_error(*_credential(provider), header) is not None:
        return None
    return provider, placement


def forget_assumed(view, *, stale: bool) -> None:
    """Read the provider again for this request, from the database whatever another thread
    remembers meanwhile. ``stale``: the provider changed since it was remembered, so no
    later request trusts that read either."""
    if stale:
        _assumable.pop(view.kwargs.get("provider_slug", ""), None)
    view.__dict__.pop("_provider_lookup", None)
    view.provider_assumed = False
    view.provider_read_required = True
    view.provider = None  # not authenticated until the read says so (a 401 is then limited)


@functools.cache
def _provider_columns() -> PreparedColumns:
    return PreparedColumns(Provider)


def _credential(provider: Provider) -> tuple[str, str, str]:
    return provider.auth_type, provider.credential_username, provider.secret_digest


def provider_for_request(view) -> Provider | None:
    """The provider the URL names, read once per request. A view that creates users
    (``placement_on_post``) gets, on POST, where they land with it: ``view.placement``.

    A view with ``read_with_provider(provider_id)`` may name the read it will make. When
    the request presents the credential an earlier request of this process was accepted
    with, on PostgreSQL that read goes out with the provider's, one round trip for both,
    and its rows wait in ``view.read_ahead`` (provider id, statement, (names, rows)) for
    the view, which uses them only after authentication and only for that provider. An
    unauthenticated client never makes the server read ahead."""
    if not hasattr(view, "_provider_lookup"):
        slug = view.kwargs.get("provider_slug", "")
        if getattr(view, "placement_on_post", False) and view.request.method == "POST":
            assumed = None
            if not getattr(view, "provider_read_required", False):
                assumed = assumed_provider(view, slug)
            if assumed is not None:
                (view._provider_lookup, view.placement), view.provider_assumed = assumed, True
            else:
                view._provider_lookup, view.placement = provider_with_placement(slug)
        else:
            view._provider_lookup = _provider_and_read_ahead(view, slug)
        if view._provider_lookup is None:
            _known.pop(slug, None)
            _assumable.pop(slug, None)
    return view._provider_lookup


def _provider_and_read_ahead(view, slug: str) -> Provider | None:
    ahead = _read_ahead_statement(view, slug)
    if ahead is None:
        return provider_by_slug(slug)
    known, statement = ahead
    try:
        provider, found = _PROVIDER_BY_SLUG.first_instance_and((slug,), statement)
    except DatabaseError:  # the read ahead failed the pipeline (autocommit): read plainly
        return provider_by_slug(slug)
    view.read_ahead = (known, statement, found)
    return provider


def _read_ahead_statement(view, slug: str) -> tuple[int, tuple[str, list]] | None:
    """(the provider id assumed, the view's statement for it), or None."""
    plan = getattr(view, "read_with_provider", None)
    known = _known.get(slug)
    if plan is None or known is None or connection.vendor != "postgresql":
        return None
    if credential_error(*known[1:], get_authorization_header(view.request)) is not None:
        return None
    try:
        statement = plan(known[0])
    except Exception:  # a bad filter and the like: the view reports it, after authentication
        return None
    return None if statement is None else (known[0], statement)


def credential_error(
    auth_type: str, credential_username: str, secret_digest: str, header: bytes
) -> tuple[type, str] | None:
    """Why an ``Authorization`` header does not carry this credential: (the DRF exception
    class, its message), or None when it does. Secrets and usernames are compared in
    constant time, both always, so timing says nothing either way."""
    scheme, _, value = header.partition(b" ")
    scheme = scheme.lower()
    if not scheme:
        return exceptions.NotAuthenticated, "Authentication credentials were not provided."
    try:
        value = value.strip().decode("ascii")
    except UnicodeDecodeError:
        return exceptions.AuthenticationFailed, "Malformed Authorization header."
    if auth_type == AuthType.TOKEN:
        if scheme != b"bearer":
            return (
                exceptions.AuthenticationFailed,
                "This provider uses an OAuth token: send 'Authorization: Bearer <token>'.",
            )
        ok = credentials.secret_matches(value, secret_digest)
    else:
        if scheme != b"basic":
            return (
                exceptions.AuthenticationFailed,
                "This provider uses API credentials: send HTTP Basic authentication.",
            )
        try:
            username, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return exceptions.AuthenticationFailed, "Malformed Basic credentials."
        name_ok = hmac.compare_digest(
            username.lower().encode(), credential_username.lower().encode()
        )
        secret_ok = credentials.secret_matches(secret, secret_digest)
        ok = name_ok and secret_ok
    if not ok:
        return exceptions.AuthenticationFailed, "Invalid credentials for this SCIM base URL."
    return None


class ProviderCredentialAuthentication(BaseAuthentication):
    def authenticate(self, request):
        view = request.parser_context["view"]
        provider = provider_for_request(view)
        header = get_authorization_header(request)
        if not header.partition(b" ")[0]:
            raise exceptions.NotAuthenticated("Authentication credentials were not provided.")
        if provider is None:
            raise exceptions.AuthenticationFailed("Invalid credentials for this SCIM base URL.")
        credential = _credential(provider)
        slug = view.kwargs.get("provider_slug", "")
        remembered = _known.get(slug)
        if remembered is not None and remembered != (provider.pk, *credential):
            # Regenerated secret, or another provider at this slug: the old credential must
            # not make the server read ahead any more. (Only a stale entry goes: a wrong
            # credential cannot switch reading ahead off for the real identity provider.)
            _known.pop(slug, None)
            _assumable.pop(slug, None)
        error = credential_error(*credential, header)
        if error is not None:
            raise error[0](error[1])
        _known[slug] = (provider.pk, *credential)
        placement = getattr(view, "placement", None)
        if placement is not None and not getattr(view, "provider_assumed", False):
            columns = _provider_columns()
            _assumable[slug] = ([getattr(provider, name) for name in columns.attnames], placement)
        view.provider = provider
        return ProviderPrincipal(provider), None

    def authenticate_header(self, request):
        view = request.parser_context["view"]
        provider = provider_for_request(view)
        if provider is not None and provider.auth_type == AuthType.BASIC:
            return 'Basic realm="Gatehouse SCIM"'
        return 'Bearer realm="Gatehouse SCIM"'


class ProviderRateThrottle(SimpleRateThrottle):
    """Per-provider request rate (PRODUCT.md: 429 + Retry-After). Generous by default:
    IdPs burst on their first full sync.

    A fixed-window counter (one increment per request, ``_count``) instead of DRF's
    sliding-window history: that one pickles a list of every request time in the window,
    20,000 entries at the default rate, on every request.
    """

    scope = "scim_provider"

    def get_rate(self):
        return settings.GATEHOUSE_SCIM_RATE_LIMIT

    def get_cache_key(self, request, view):
        provider = getattr(view, "provider", None)
        if provider is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": provider.pk}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.window_ends = (window + 1) * self.duration
        try:
            count = _count(f"{key}:{window}", self.duration + 1)
        except Exception:  # the cache is down: provisioning goes on, unthrottled, and says so
            logger.warning("SCIM rate limit not applied: the cache is unavailable", exc_info=True)
            return True
        return count <= self.num_requests

    def wait(self):
        return max(1.0, self.window_ends - self.timer())


def _count(key: str, timeout: int) -> int:
    """Count one request under ``key`` (a window's counter, created expiring after
    ``timeout`` seconds); returns the count so far.

    Django's Redis backend makes ``add`` then ``incr`` three round trips (its ``incr`` asks
    EXISTS first), on every SCIM request; against it the two go out in one pipeline
    (through its client: Django has no API for this). Other backends take add/incr."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        full_key = backend.make_and_validate_key(key)
        pipe = backend._cache.get_client(full_key, write=True).pipeline(transaction=False)
        pipe.set(full_key, 0, ex=timeout, nx=True)
        pipe.incr(full_key)
        return pipe.execute()[1]
    if backend.add(key, 1, timeout):
        return 1
    try:
        return backend.incr(key)
    except ValueError:  # expired between add and incr: a new window
        backend.add(key, 1, timeout)
        return 1
