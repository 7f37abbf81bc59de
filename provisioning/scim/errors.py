"""Every SCIM error the service can answer, one class per RFC 7644 §3.12 ``scimType``.

Built on django-scim2's ``SCIMException`` (its ``to_dict`` renders the error body), and
rendered for every failure by ``scim_exception_handler`` below, including DRF's own errors
(parse, media type, authentication, throttling), so an IdP never sees an HTML page or a 500
with exception text.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from contextlib import contextmanager, nullcontext

import orjson
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    ValidationError,
)
from django.db import OperationalError, connection
from django.http import HttpResponse
from django.views import defaults
from django_scim import exceptions as django_scim_exceptions
from rest_framework import exceptions as drf
from rest_framework.authentication import get_authorization_header
from rest_framework.response import Response

from synclog import record

logger = logging.getLogger("gatehouse.scim")


class ScimError(django_scim_exceptions.SCIMException):
    status = 400
    scim_type: str | None = None

    def __init__(self, detail: str, **kwargs):
        super().__init__(detail, **kwargs)


class InvalidValue(ScimError):
    scim_type = "invalidValue"


class InvalidSyntax(ScimError):
    scim_type = "invalidSyntax"


class InvalidFilter(ScimError):
    scim_type = "invalidFilter"


class InvalidPath(ScimError):
    scim_type = "invalidPath"


class NoTarget(ScimError):
    scim_type = "noTarget"


class Mutability(ScimError):
    scim_type = "mutability"


class TooMany(ScimError):
    scim_type = "tooMany"


class Uniqueness(ScimError):
    status = 409
    scim_type = "uniqueness"


class NotFound(ScimError):
    status = 404


class Forbidden(ScimError):
    status = 403


class NotImplementedOperation(ScimError):
    """501: an operation the service does not offer (RFC 7644 §3.11 /Me, §3.7 /Bulk, whose
    absence ServiceProviderConfig announces)."""

    status = 501
    scim_type = None


class UnsupportedEncoding(ScimError):
    """415: a body in a content coding the service does not decode (RFC 9110 §15.5.16)."""

    status = 415


class PreconditionFailed(ScimError):
    status = 412


def from_validation_error(exc: ValidationError) -> InvalidValue:
    return InvalidValue("; ".join(exc.messages))


def _body(status: int, detail: str, scim_type: str | None = None) -> dict:
    body = {
        "schemas": [django_scim_exceptions.SchemaURI.ERROR],
        "status": str(status),  # RFC 7644 §3.12: status is a string
        "detail": detail,
    }
    if scim_type:
        body["scimType"] = scim_type
    return body


def error_response(status: int, detail: str, scim_type: str | None = None, headers=None):
    return Response(_body(status, detail, scim_type), status=status, headers=headers)


def bad_request(request, exception):
    """Django's 400 (``handler400``, console/urls.py), for what it refuses before any view,
    such as a Host outside ``ALLOWED_HOSTS``: under /scim/ a SCIM error body, which the
    IdP's log shows the administrator; elsewhere Django's page."""
    if not request.path.startswith("/scim/"):
        return defaults.bad_request(request, exception)
    detail = "Bad request."
    if isinstance(exception, DisallowedHost):  # not echoing the client's Host
        detail = (
            "The Host header names no host this server answers for (ALLOWED_HOSTS, "
            "GATEHOUSE_BASE_URL)."
        )
    return HttpResponse(
        orjson.dumps(_body(400, detail)), status=400, content_type="application/scim+json"
    )


def not_found(request, exception):
    """Django's 404 (``handler404``), for a path no URL pattern takes: under /scim/ (no
    provider's base URL in it, a slug no provider could have, a path with a line break) a
    SCIM error body, not an HTML page; elsewhere Django's page."""
    if not request.path.startswith("/scim/") and request.path != "/scim":
        return defaults.page_not_found(request, exception)
    detail = "No SCIM endpoint here: a provider's base URL is /scim/v2/<provider slug>/."
    return HttpResponse(
        orjson.dumps(_body(404, detail)), status=404, content_type="application/scim+json"
    )


def scim_exception_handler(exc, context):
    """DRF ``EXCEPTION_HANDLER`` for the SCIM views: a SCIM error body for everything."""
    request = context.get("request")
    view = context.get("view")
    headers: dict[str, str] = {}
    if isinstance(exc, ScimError):
        status, detail, scim_type = exc.status, exc.detail, exc.scim_type
    elif isinstance(exc, drf.Throttled):
        status, scim_type = 429, None
        wait = int(exc.wait or 1)
        headers["Retry-After"] = str(max(1, wait))
        detail = f"Too many requests for this provider; retry after {max(1, wait)} s."
    elif isinstance(exc, drf.ParseError):
        status, scim_type, detail = 400, "invalidSyntax", f"Malformed JSON body: {exc.detail}"
    elif isinstance(exc, drf.UnsupportedMediaType):
        status, scim_type = 415, None
        detail = "Send the body as application/scim+json or application/json."
    elif isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        status, scim_type, detail = 401, None, str(exc.detail)
        if view is not None and request is not None:
            header = view.get_authenticate_header(request)
            if header:
                headers["WWW-Authenticate"] = header
    elif isinstance(exc, drf.MethodNotAllowed):
        status, scim_type, detail = 405, None, str(exc.detail)
    elif isinstance(exc, drf.NotAcceptable):
        status, scim_type, detail = 406, None, str(exc.detail)
    elif isinstance(exc, drf.APIException):
        status, scim_type, detail = exc.status_code, None, str(exc.detail)
    elif isinstance(exc, RequestDataTooBig):  # raised when the view reads the body
        status, scim_type = 413, None
        detail = f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
    elif isinstance(exc, SuspiciousOperation):
        # Another request Django refuses as it reads it (over DATA_UPLOAD_MAX_NUMBER_FIELDS
        # query parameters): the client's, so a 400.
        status, scim_type, detail = 400, "invalidValue", str(exc) or "Bad request."
    elif isinstance(exc, ValidationError):
        # A model or lookup value Django refused (a filter's date that is not one): the
        # client's input, so a 400 naming it, never a 500. Raised before any write committed.
        status, scim_type, detail = 400, "invalidValue", from_validation_error(exc).detail
    elif _transient(exc):
        # Two writes crossed (a deadlock the database broke, SQLite busy past its timeout):
        # nothing was written, and the same request succeeds when sent again.
        logger.warning("SCIM request %s: %s", getattr(request, "scim_request_id", ""), exc)
        status, scim_type, headers["Retry-After"] = 503, None, "1"
        detail = "A conflicting change was being written at the same time; send it again."
    else:
        request_id = getattr(request, "scim_request_id", "")
        logger.exception("Unexpected error in SCIM request %s", request_id)
        status, scim_type = 500, None
        detail = f"Internal server error (request id {request_id})."
    # SQLite locked past its 30 s busy timeout: recording the refusal waited 30 s more and
    # failed too, so the IdP heard its 503 after a minute (past many a client's timeout) and
    # nobody saw why. It gets one second.
    with _busy_timeout(1000) if _sqlite_busy(exc) else nullcontext():
        _record_rejection(request, view, status, scim_type, detail)
    return error_response(status, detail, scim_type, headers=headers)


def _sqlite_busy(exc) -> bool:
    return connection.vendor == "sqlite" and _locked(exc)


def _locked(exc) -> bool:
    return isinstance(exc, OperationalError) and "database is locked" in str(exc)


@contextmanager
def _busy_timeout(milliseconds: int):
    """SQLite's busy timeout set for this connection inside the block, restored after."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        (before,) = cursor.fetchone()
        cursor.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {int(before)}")


# PostgreSQL: deadlock detected and serialization failure (run again at once), lock not
# available (the client's to retry).
_RETRIED_SQLSTATES = {"40P01", "40001"}
_TRANSIENT_SQLSTATES = _RETRIED_SQLSTATES | {"55P03"}


def retry_resolves(exc) -> bool:
    """A PostgreSQL deadlock or serialization failure: the request's transaction rolled back
    and running it again succeeds (SQLite's busy timeout, 30 s spent, is not retried)."""
    return isinstance(exc, OperationalError) and (
        getattr(exc.__cause__, "sqlstate", None) in _RETRIED_SQLSTATES
    )


def _transient(exc) -> bool:
    """A database error that sending the request again resolves."""
    if not isinstance(exc, OperationalError):
        return False
    if getattr(exc.__cause__, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return True
    return _locked(exc)  # SQLite


REFUSED_CREDENTIALS_EVERY = 60  # seconds: at most one 401 row per provider in that time


def _refused_provider(view):
    """The provider whose base URL a refused credential was sent to, once a minute.

    Wrong or rotated credentials are the commonest reason an IdP's push fails, so a 401 is
    recorded for the provider the URL names. Anyone can send a wrong credential, though:
    one row per provider a minute says it happens without letting a client fill the
    table. A Basic credential with the provider's own username (its IdP, with a stale
    secret) has a minute of its own, so nobody else's refusals can hide it."""
    named = getattr(view, "_provider_lookup", None) if view is not None else None
    if named is None:
        return None
    kind = "its-username" if _names_its_username(view.request, named) else "other"
    try:
        key = f"scim:refused-credentials:{named.pk}:{kind}"
        first = cache.add(key, 1, REFUSED_CREDENTIALS_EVERY)
    except Exception:  # the cache is down: not recorded, as throttling is not applied
        return None
    return named if first else None


def _names_its_username(request, provider) -> bool:
    """Whether the request's Basic credential names the provider's username (compared in
    constant time, as authentication does)."""
    scheme, _, value = get_authorization_header(request).partition(b" ")
    if scheme.lower() != b"basic":
        return False
    try:
        username = base64.b64decode(value.strip(), validate=True).partition(b":")[0]
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(username, provider.credential_username.encode())


def _record_rejection(request, view, status: int, scim_type, detail: str) -> None:
    """PRODUCT.md "Sync log": rejected requests are kept per provider, so an administrator
    sees why a push failed. Written after the request's transaction rolled back."""
    provider = getattr(view, "provider", None) if view is not None else None
    if provider is None and status == 401:
        provider = _refused_provider(view)
    if provider is None or request is None:
        return
    try:
        record.rejected_request(
            provider_id=provider.pk,
            provider_label=provider.name,
            method=request.method,
            path=request.get_full_path(),
            status=status,
            scim_type=scim_type or "",
            detail=detail,
            request_id=getattr(request, "scim_request_id", ""),
        )
    except Exception:  # recording must never turn an answer into a 500
        # What the row would have said, so the refusal is not lost (SQLite locked past its
        # timeout refuses this row too).
        logger.exception(
            "Could not record a rejected SCIM request: provider %s, %s %s, %s %s: %s",
            provider.name, request.method, request.get_full_path(), status, scim_type or "",
            detail,
        )  # fmt: skip
