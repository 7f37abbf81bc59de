"""The DRF plumbing every SCIM view shares: authentication, throttling, media types,
SCIM error bodies, request ids, list paging and attribute projection."""

from __future__ import annotations

import io
import re
import uuid

import orjson
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, QueryDict
from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from synclog.models import ActorKind
from synclog.record import Actor

from . import errors
from .authentication import (
    ProviderCredentialAuthentication,
    ProviderRateThrottle,
    forget_assumed,
)
from .schema import CORE_GROUP, CORE_USER, LIST_RESPONSE

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


# SCIM bodies nest a few levels (a PatchOp's value holding an extension's manager object is
# the deepest, at 5); a client's body nested far deeper is refused before anything walks it.
MAX_BODY_DEPTH = 32


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, refusing a body nested past ``MAX_BODY_DEPTH`` as a parse error
    (400 invalidSyntax): near Python's recursion limit the standard decoder raises
    RecursionError, which would be a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        # orjson first: it decodes a create's body in a tenth of the time of DRF's codecs
        # reader and json.load. It takes only UTF-8 (SCIM's encoding, RFC 7644 §3.1), so a
        # charset parameter naming another never turns "café" into "cafÃ©". Whatever it
        # refuses goes through DRF's parser too, for the same errors as ever.
        raw = stream.read()
        if raw.startswith(_BOM):
            raw = raw[len(_BOM) :]  # .NET's and PowerShell's UTF-8 writers start with one
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = self._parsed_by_drf(io.BytesIO(raw), media_type, parser_context)
        if _deeper_than(data, MAX_BODY_DEPTH):
            raise ParseError(f"The JSON body is nested deeper than {MAX_BODY_DEPTH} levels.")
        return data

    def _parsed_by_drf(self, stream, media_type, parser_context):
        parser_context = {**(parser_context or {}), "encoding": "utf-8"}
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("The JSON body is nested too deeply.") from None


_COMPRESSIONS = {"gzip", "x-gzip", "deflate", "br", "compress", "x-compress", "zstd"}
_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, which RFC 8259 §8.1 lets a parser ignore


class ScimJSONParser(BoundedJSONParser):
    media_type = "application/scim+json"


def _deeper_than(data, limit: int) -> bool:
    """Whether ``data`` nests lists and objects more than ``limit`` deep (no recursion)."""
    level = [data]
    for _ in range(limit):
        level = [
            child
            for node in level
            if isinstance(node, (dict, list))
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


class ScimJSONRenderer(JSONRenderer):
    """SCIM JSON through orjson: a page of 100 users renders in ~0.1 ms instead of ~1 ms.
    SCIM bodies are plain dicts of strings, numbers, booleans and lists."""

    media_type = "application/scim+json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return orjson.dumps(data)


class PlainJSONRenderer(ScimJSONRenderer):
    """The same body, labelled ``application/json``: for a client that accepts only that."""

    media_type = "application/json"


class AlwaysScimJSON(BaseContentNegotiation):
    """IdPs send all sorts of Accept headers (``*/*``, ``application/json``); the answer is
    always SCIM JSON (RFC 7644 §3.1), never a 406. It is labelled ``application/json`` only
    for a client that accepts that and not ``application/scim+json`` (RFC 7644 §3.8: both
    name SCIM documents)."""

    def select_parser(self, request, parsers):
        for parser in parsers:
            if request.content_type.split(";")[0].strip().lower() == parser.media_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        accepted = set()
        for part in request.headers.get("Accept", "").split(","):
            media_type, *parameters = (piece.strip().lower() for piece in part.split(";"))
            if not any(_REFUSED.fullmatch(parameter) for parameter in parameters):  # q=0
                accepted.add(media_type)
        if "application/json" in accepted and accepted.isdisjoint(_SCIM_JSON_RANGES):
            return _PLAIN_JSON, _PLAIN_JSON.media_type
        return renderers[0], renderers[0].media_type


_SCIM_JSON_RANGES = {"application/scim+json", "application/*", "*/*"}
_REFUSED = re.compile(r"q\s*=\s*0(?:\.0{0,3})?")
_PLAIN_JSON = PlainJSONRenderer()


_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class ScimView(APIView):
    authentication_classes = [ProviderCredentialAuthentication]
    throttle_classes = [ProviderRateThrottle]
    permission_classes: list = []
    parser_classes = [ScimJSONParser, BoundedJSONParser]
    renderer_classes = [ScimJSONRenderer]
    content_negotiation_class = AlwaysScimJSON
    # OPTIONS would answer DRF's metadata (view docstrings included): a SCIM 405 instead.
    metadata_class = None
    provider = None
    provider_assumed = False  # authentication.assumed_provider
    provider_read_required = False  # authentication.forget_assumed

    @property
    def allowed_methods(self):
        # The Allow header of a 405 names what is served: not OPTIONS, which is refused.
        return [method for method in super().allowed_methods if method != "OPTIONS"]

    def get_exception_handler(self):
        return errors.scim_exception_handler

    def initial(self, request, *args, **kwargs):
        # The client's id is echoed in a response header and stored with history rows: only
        # a plain token is taken over, anything else gets an id of our own.
        given = request.headers.get("X-Request-ID", "")
        request.scim_request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        super().initial(request, *args, **kwargs)
        self._note_request_root()
        _canonical_query(request)
        coding = request.headers.get("Content-Encoding", "").strip().lower()
        if coding in _COMPRESSIONS and request.META.get("CONTENT_LENGTH") not in ("", "0", None):
            # It was read as JSON and answered "Malformed JSON". Only a body that is there
            # and compressed: a header alone (or "UTF-8", which some clients write) is ignored.
            raise errors.UnsupportedEncoding(
                f"Content-Encoding {coding!r} is not supported: send the body uncompressed."
            )
        self._initialized = True

    def _note_request_root(self) -> None:
        if settings.GATEHOUSE_BASE_URL_FROM_REQUEST and self.provider is not None:
            self.provider.request_root = f"{self.request.scheme}://{self.request.get_host()}"

    def authenticate_again(self, *, stale: bool) -> None:
        """Read the provider and check the credential again (a view that trusted an earlier
        request's read of the provider, ``provider_assumed``): raises as authentication
        does. ``stale``: that read proved out of date."""
        forget_assumed(self, stale=stale)
        self.request._authenticate()  # DRF's: sets request.user, or raises 401
        self._note_request_root()

    def throttled(self, request, wait):
        if self.provider_assumed:
            # The credential checked against the database before the 429: a regenerated
            # secret gets its 401.
            self.authenticate_again(stale=False)
        super().throttled(request, wait)

    def handle_exception(self, exc):
        """A write the database chose as a deadlock's victim (or a serialization failure)
        wrote nothing: it runs once more before the IdP is told 503, since the write it
        crossed has gone through by then. Only outside any transaction (the request's own
        rolled back: not inside a test's)."""
        method = self.request.method
        if (
            method in _WRITES
            and getattr(self, "_initialized", False)  # authenticated and throttled
            and not getattr(self, "_retried", False)
            and errors.retry_resolves(exc)
            and not connection.in_atomic_block
        ):
            self._retried = True
            errors.logger.info("SCIM request %s: %s; running it again",
                               getattr(self.request, "scim_request_id", ""), exc)  # fmt: skip
            self.read_ahead = None
            try:
                return getattr(self, method.lower())(self.request, *self.args, **self.kwargs)
            except Exception as again:
                exc = again
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["X-Request-ID"] = getattr(request, "scim_request_id", "")
        return response

    def permission_denied(self, request, message=None, code=None):
        # No permission classes: only authentication can refuse, and it raises itself.
        super().permission_denied(request, message, code)

    @property
    def actor(self) -> Actor:
        """PRODUCT.md "Audit log": the acting user is the provider's credential username."""
        return Actor(
            kind=ActorKind.PROVIDER,
            label=self.provider.credential_username,
            provider_id=self.provider.pk,
            provider_label=self.provider.name,
            request_id=self.request.scim_request_id,
        )

    def rows_read_ahead(self, statement: tuple[str, list]) -> tuple[list, list] | None:
        """The column names and rows authentication read ahead for this view
        (``authentication.provider_for_request``), when they are of this very statement
        for the authenticated provider; else None."""
        ahead = getattr(self, "read_ahead", None)
        if ahead is None or ahead[0] != self.provider.pk or ahead[1] != statement:
            return None
        return ahead[2]

    def json_body(self):
        """The parsed body, read inside the handler so a parse error is a SCIM 400."""
        data = self.request.data
        if not isinstance(data, dict):
            raise errors.InvalidSyntax("The request body must be a JSON object.")
        check_storable(data)
        return data


_PARAMETERS = {
    name.lower(): name
    for name in (
        "filter", "startIndex", "count", "sortBy", "sortOrder", "attributes", "excludedAttributes",
    )
}  # fmt: skip


def _canonical_query(request) -> None:
    """The SCIM query parameters under their own names, whatever case the client wrote them
    in, each given once. ``?Filter=userName eq "…"`` was ignored as unknown, and the lookup
    an IdP makes before a create answered with every user; ``filter=a&filter=b`` used b."""
    query = request._request.GET
    if all(key in _CANONICAL and len(values) == 1 for key, values in query.lists()):
        return
    canonical = QueryDict(mutable=True)
    for key, values in query.lists():
        name = _PARAMETERS.get(key.lower(), key)
        if name in _CANONICAL and (len(values) > 1 or name in canonical):
            raise errors.InvalidValue(f"The query parameter {name} is given more than once.")
        canonical.setlist(name, values)
    canonical._mutable = False
    request._request.GET = canonical


_CANONICAL = frozenset(_PARAMETERS.values())


def check_storable(body) -> None:
    """A 400 for a parsed body holding a character no database can store: "\\u0000" parses,
    and PostgreSQL text cannot hold it; "\\ud800" (an unpaired surrogate) parses too, and
    no database, nor the JSON answer, can hold that."""
    unstorable = _unstorable(body)
    if unstorable == "\x00":
        raise errors.InvalidValue("The request body contains a NUL character (\\u0000).")
    if unstorable:
        raise errors.InvalidValue(
            "The request body contains an unpaired UTF-16 surrogate "
            f"(\\u{ord(unstorable):04x}), which is not a character."
        )


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(value) -> str | None:
    """The first character of ``value`` (a parsed body) that cannot be stored, or None."""
    if isinstance(value, str):
        found = _UNSTORABLE.search(value)
        return found.group() if found else None
    if isinstance(value, dict):
        items = (part for pair in value.items() for part in pair)
    elif isinstance(value, list):
        items = iter(value)
    else:
        return None
    for item in items:
        found = _unstorable(item)
        if found:
            return found
    return None


_INTEGER = re.compile(r"[+-]?[0-9]+")


def paging(request) -> tuple[int, int]:
    """``startIndex`` (1-based) and ``count``. RFC 7644 §3.4.2.4: below 1 is 1, a negative
    count is 0, more than maxResults is capped; anything not an integer is a 400."""

    def integer(name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw in (None, ""):
            return default
        # ASCII digits only: int() also read "1_0" as 10 and "٥" as 5.
        if not _INTEGER.fullmatch(raw.strip()):
            raise errors.InvalidValue(f"{name} must be an integer, got {raw!r}.")
        if len(raw.strip().lstrip("+-")) > 30:  # past any page; int() refuses 4,300 digits
            return -(2**63) if raw.strip().startswith("-") else 2**63
        return int(raw)

    # Past 2**31 no list has a result: such a start is read as 2**31 + 1, an empty page, not
    # an integer too large for the database's OFFSET.
    start = min(max(1, integer("startIndex", 1)), 2**31 + 1)
    count = min(max(0, integer("count", 100)), settings.GATEHOUSE_SCIM_MAX_RESULTS)
    return start, count


def list_response(resources: list[dict], total: int, start: int) -> dict:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def attribute_names(param: str | None) -> list[str]:
    """The names an ``attributes`` or ``excludedAttributes`` parameter lists."""
    names = [p.strip() for p in (param or "").split(",") if p.strip()]
    # RFC 7644 §3.10: a core attribute may be named with its schema URI prefix.
    return [_without_core_prefix(name) for name in names]


def _is_core_schema(name: str, resource: dict) -> bool:
    """Whether ``name`` is the URN of the resource's own core schema (the first it lists)."""
    schemas = resource.get("schemas") or [""]
    return name.lower() == str(schemas[0]).lower()


def _without_core_prefix(name: str) -> str:
    for schema in (CORE_USER, CORE_GROUP):
        if name.lower().startswith(schema.lower() + ":"):
            return name[len(schema) + 1 :]
    return name


def project(resource: dict, request, always=("id", "schemas")) -> dict:
    """Apply ``attributes`` / ``excludedAttributes`` (RFC 7644 §3.9), case-insensitively,
    to top-level attributes, sub-attributes (``name.givenName``) and extension attributes
    (``urn:…:User:department``). ``id`` is always returned; ``meta`` is "returned: default"
    (RFC 7643 §3.1), like any other: left out by ``attributes`` that do not name it and by
    ``excludedAttributes=meta`` (the ETag header still carries the version)."""
    include = attribute_names(request.query_params.get("attributes"))
    exclude = attribute_names(request.query_params.get("excludedAttributes"))
    if not include and not exclude:
        return resource

    def split(name: str) -> tuple[str | None, str, str | None]:
        lowered = name.lower()
        for key in resource:
            if key.lower().startswith("urn:") and lowered.startswith(key.lower() + ":"):
                rest = name[len(key) + 1 :]
                top, _, sub = rest.partition(".")
                return key, top, sub or None
        top, _, sub = name.partition(".")
        if top.lower().startswith("urn:"):
            return None, name, None  # a whole extension
        return None, top, sub or None

    def matches(key: str, top: str) -> bool:
        return key.lower() == top.lower()

    if include:
        out = {k: v for k, v in resource.items() if k in always}
        for name in include:
            if _is_core_schema(name, resource):  # the core schema's URN: all of its attributes
                out.update({k: v for k, v in resource.items() if not k.startswith("urn:")})
                continue
            extension, top, sub = split(name)
            source, target = resource, out
            if extension:
                source = resource.get(extension, {})
                target = out.setdefault(extension, {})
            for key, value in source.items():
                if not matches(key, top):
                    continue
                if sub and isinstance(value, dict):
                    picked = {k: v for k, v in value.items() if k.lower() == sub.lower()}
                    if picked:
                        target.setdefault(key, {}).update(picked)
                elif sub and isinstance(value, list):
                    # Values without that sub-attribute are left out, not rendered as {}, and
                    # so is the attribute when none has it (RFC 7643 §2.5).
                    picked = [
                        {k: v for k, v in item.items() if k.lower() == sub.lower()}
                        for item in value
                        if isinstance(item, dict)
                    ]
                    if any(picked):
                        target[key] = [item for item in picked if item]
                else:
                    target[key] = value
        return _extensions_present({k: v for k, v in out.items() if v != {}})
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in resource.items()}
    for name in exclude:
        if _is_core_schema(name, resource):
            out = {k: v for k, v in out.items() if k in always or k.startswith("urn:")}
            continue
        extension, top, sub = split(name)
        target = out.get(extension, {}) if extension else out
        for key in list(target):
            if matches(key, top) and key not in always:
                value = target[key]
                if sub and isinstance(value, dict):
                    target[key] = {k: v for k, v in value.items() if k.lower() != sub.lower()}
                elif sub and isinstance(value, list):
                    kept = [
                        {k: v for k, v in item.items() if k.lower() != sub.lower()}
                        if isinstance(item, dict)
                        else item
                        for item in value
                    ]
                    if any(kept):
                        target[key] = [item for item in kept if item != {}]
                    else:
                        del target[key]
                elif not sub:
                    del target[key]
    # An extension or complex attribute left with nothing is left out, not rendered as {}.
    return _extensions_present({k: v for k, v in out.items() if v != {} or k in always})


def _extensions_present(resource: dict) -> dict:
    """``schemas`` names the core schema and the extensions whose objects are still there
    (RFC 7643 §3), once ``attributes``/``excludedAttributes`` left some out."""
    schemas = resource.get("schemas")
    if isinstance(schemas, list) and len(schemas) > 1:
        resource["schemas"] = [s for i, s in enumerate(schemas) if i == 0 or s in resource]
    return resource


SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
_SEARCH_KEYS = ("filter", "startIndex", "count", "sortBy", "sortOrder")


def use_search_body(request) -> None:
    """RFC 7644 §3.4.3: ``POST …/.search`` carries the query parameters in a SearchRequest
    body. Turn it into the query string the list views already read, so a search and a GET
    list are one code path."""
    from django.http import QueryDict

    body = request.data
    if not isinstance(body, dict):
        raise errors.InvalidSyntax("A search body must be a SearchRequest object.")
    # Names are case-insensitive (RFC 7643 §2.1): a "Filter" left unread listed everyone.
    body = fold_keys(body)
    # The filter is checked as a filter (400 invalidFilter), the rest here.
    check_storable({key: value for key, value in body.items() if key != "filter"})
    params = QueryDict(mutable=True)
    for key in _SEARCH_KEYS:
        if body.get(key.lower()) is not None:
            params[key] = str(body[key.lower()])
    for key in ("attributes", "excludedAttributes"):
        value = body.get(key.lower())
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise errors.InvalidSyntax(f"{key} must be a list of attribute names.")
            params[key] = ",".join(value)
        elif isinstance(value, str):
            params[key] = value
    request._request.GET = params


def fold_keys(mapping: dict) -> dict:
    """``mapping`` with its names lower-cased: SCIM names are case-insensitive (RFC 7643
    §2.1)."""
    return {key.lower() if isinstance(key, str) else key: value for key, value in mapping.items()}


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def check_if_match(request, current_etag: str) -> None:
    """RFC 7644 §3.14, RFC 7232 §3: a stale ``If-Match`` version is ``412 Precondition
    Failed``, whatever the method. So is an ``If-None-Match`` naming the current version (or
    ``*``) on a write: the client meant to write only over another version, or none."""
    header = request.headers.get("If-Match")
    if header and header.strip() != "*":
        wanted = {tag.strip().removeprefix("W/") for tag in header.split(",")}
        if current_etag.removeprefix("W/") not in wanted:
            raise errors.PreconditionFailed(
                "The resource changed since that version (If-Match); fetch it and retry."
            )
    if request.method not in ("GET", "HEAD") and not_modified(request, current_etag):
        raise errors.PreconditionFailed(
            "The resource is at a version If-None-Match excludes; nothing was changed."
        )


def without_body(status: int, current_etag: str) -> HttpResponse:
    """A 304 or 204 with the ETag and no Content-Type: there is no representation (RFC 7232
    §4.1), and Django would otherwise label the empty body text/html."""
    response = HttpResponse(status=status, headers={"ETag": current_etag})
    del response["Content-Type"]
    return response


def not_modified(request, current_etag: str) -> bool:
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or current_etag.removeprefix("W/") in tags
