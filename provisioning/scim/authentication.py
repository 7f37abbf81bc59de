"""DRF authentication and throttling for the per-provider SCIM base URL.

The credential must belong to the provider named in the URL: a valid secret of provider A
presented at ``/scim/v2/<B>/`` is refused. Secrets are compared as HMAC digests in constant
time (provisioning/credentials.py).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.throttling import SimpleRateThrottle

from identity.prepared import CompiledQuery
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


# slug -> provider id, as the provider reads of earlier requests found it. A provider's id
# never changes; a slug could come to name another provider (deleted, then created again),
# which the provider row read together with the read ahead shows: then it is not used.
_known_ids: dict[str, int] = {}


def provider_for_request(view) -> Provider | None:
    """The provider the URL names, read once per request. A view that creates users
    (``placement_on_post``) gets, on POST, where they land with it: ``view.placement``.
    A view with ``read_with_provider(provider_id)`` may name the read it will make, for
    the provider id earlier requests found for this slug; on PostgreSQL that read goes out
    with the provider's, one round trip for both, and its rows wait in ``view.read_ahead``
    (provider id, statement, (column names, rows)). Nothing read ahead reaches a client
    before the credential is checked: the view uses it only after authentication."""
    if not hasattr(view, "_provider_lookup"):
        slug = view.kwargs.get("provider_slug", "")
        if getattr(view, "placement_on_post", False) and view.request.method == "POST":
            view._provider_lookup, view.placement = provider_with_placement(slug)
        elif (ahead := _read_ahead_statement(view, slug)) is not None:
            known, statement = ahead
            view._provider_lookup, found = _PROVIDER_BY_SLUG.first_instance_and((slug,), statement)
            view.read_ahead = (known, statement, found)
        else:
            view._provider_lookup = provider_by_slug(slug)
        if view._provider_lookup is not None:
            _known_ids[slug] = view._provider_lookup.pk
    return view._provider_lookup


def _read_ahead_statement(view, slug: str) -> tuple[int, tuple[str, list]] | None:
    """(the provider id assumed, the view's statement for it), or None."""
    plan = getattr(view, "read_with_provider", None)
    known = _known_ids.get(slug)
    if plan is None or known is None or connection.vendor != "postgresql":
        return None
    try:
        statement = plan(known)
    except Exception:  # a bad filter and the like: the view reports it, after authentication
        return None
    return None if statement is None else (known, statement)


class ProviderCredentialAuthentication(BaseAuthentication):
    def authenticate(self, request):
        view = request.parser_context["view"]
        provider = provider_for_request(view)
        scheme, _, value = get_authorization_header(request).partition(b" ")
        scheme = scheme.lower()
        if not scheme:
            raise exceptions.NotAuthenticated("Authentication credentials were not provided.")
        if provider is None:
            raise exceptions.AuthenticationFailed("Invalid credentials for this SCIM base URL.")
        try:
            value = value.strip().decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.") from None
        if provider.auth_type == AuthType.TOKEN:
            if scheme != b"bearer":
                raise exceptions.AuthenticationFailed(
                    "This provider uses an OAuth token: send 'Authorization: Bearer <token>'."
                )
            ok = credentials.secret_matches(value, provider.secret_digest)
        else:
            if scheme != b"basic":
                raise exceptions.AuthenticationFailed(
                    "This provider uses API credentials: send HTTP Basic authentication."
                )
            try:
                username, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise exceptions.AuthenticationFailed("Malformed Basic credentials.") from None
            # Both compared in constant time; evaluate both so timing says nothing either way.
            name_ok = hmac.compare_digest(
                username.lower().encode(), provider.credential_username.lower().encode()
            )
            secret_ok = credentials.secret_matches(secret, provider.secret_digest)
            ok = name_ok and secret_ok
        if not ok:
            raise exceptions.AuthenticationFailed("Invalid credentials for this SCIM base URL.")
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
