"""SCIM 2.0 endpoints (RFC 7644) under ``/scim/v2/<provider-slug>/``.

django-scim2's own views are not used: they count a list by iterating every row, apply
scoping in Python, sit at one fixed base URL and are not DRF views. These views keep its
adapter idea (provisioning/scim/users.py) and scim2-filter-parser (filters.py) and do the
scoping, filtering, counting and paging in SQL.
"""

from __future__ import annotations

from contextlib import nullcontext

from django.core.cache import cache
from django.core.exceptions import EmptyResultSet, FieldError, ValidationError
from django.db import IntegrityError
from django.db.models import Case, F, Value, When
from django.db.models.functions import Upper
from rest_framework.response import Response

from provisioning import services, user_sync
from provisioning.models import ProviderUser
from provisioning.selectors import (
    link_by_scim_id_statement,
    link_from_row,
    provider_user_by_scim_id,
    provider_users,
)
from synclog import later

from . import discovery, errors, filter_terms, filters, user_rows
from .base import (
    ScimView,
    check_if_match,
    list_response,
    not_modified,
    paging,
    parse_uuid,
    project,
    use_search_body,
    without_body,
)
from .users import UserAdapter, etag, state_of

# --- discovery ------------------------------------------------------------------------------


class DiscoveryView(ScimView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if (request.query_params.get("filter") or "").strip():
            # RFC 7644 §4: other parameters are ignored, but a filter SHOULD be a 403, so
            # that no client takes the documents it gets for the ones it asked for.
            raise errors.Forbidden("Discovery endpoints cannot be filtered.")


class ServiceProviderConfigView(DiscoveryView):
    def get(self, request, provider_slug):
        return Response(discovery.service_provider_config(self.provider))


class ResourceTypesView(DiscoveryView):
    def get(self, request, provider_slug, resource_id=None):
        types = discovery.resource_types(self.provider)
        if resource_id is None:
            return Response(list_response(types, len(types), 1))
        for resource_type in types:
            if resource_type["id"] == resource_id:
                return Response(resource_type)
        raise errors.NotFound(f"Resource type {resource_id!r} not found.")


class SchemasView(DiscoveryView):
    def get(self, request, provider_slug, schema_id=None):
        schemas = discovery.schemas(self.provider)
        if schema_id is None:
            return Response(list_response(schemas, len(schemas), 1))
        for schema in schemas:
            if schema["id"].lower() == schema_id.lower():
                return Response(schema)
        raise errors.NotFound(f"Schema {schema_id!r} not found.")


# --- helpers --------------------------------------------------------------------------------


def _sort_field(request, attributes: dict) -> str | None:
    sort_by = request.query_params.get("sortBy")
    if not sort_by:
        return None
    from .users import parse_path

    try:
        attribute, sub, uri, _ = parse_path(sort_by)
    except errors.ScimError:
        raise errors.InvalidValue(f"Cannot sort by {sort_by!r}.") from None
    field = attributes.get(
        (attribute.lower(), sub.lower() if sub else None, uri.lower() if uri else None)
    )
    if not field or field.startswith("__"):
        raise errors.InvalidValue(f"Cannot sort by {sort_by!r}.")
    order = (request.query_params.get("sortOrder") or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise errors.InvalidValue("sortOrder must be ascending or descending.")
    return f"-{field}" if order == "descending" else field


def _ordering(sort: str | None) -> list:
    """ORDER BY for a ``_sort_field``, then the key. RFC 7644 §3.4.2.3: resources without a
    value for sortBy come last ascending and first descending; Gatehouse stores a missing
    text attribute as "" (and a missing date or id never), which would sort the other way."""
    if not sort:
        return ["id"]
    field = sort.removeprefix("-")
    descending = sort.startswith("-")
    keys = []
    value = F(field)
    if filter_terms.is_text(field):
        missing = Case(When(**{field: ""}, then=Value(1)), default=Value(0))
        keys.append(missing.desc() if descending else missing.asc())
        if field not in filter_terms.CASE_EXACT:
            # Sorting follows the attribute's caseExact (§3.4.2.3): userName, names and
            # displayName sort without regard to case; externalId with it. UPPER, not LOWER:
            # on SQLite lower() is Python's (console/sqlite3), a call per row of the sort,
            # and an order needs no more than ASCII folding.
            value = Upper(field)
    keys.append(value.desc(nulls_first=True) if descending else value.asc(nulls_last=True))
    return [*keys, "id"]


ANCHOR_SECONDS = 600


def page_of(queryset, request, attributes: dict, *, total=None, anchors="", keyset=None):
    """Filter, count and page ``queryset`` in SQL; returns (totalResults, startIndex, ids).
    No DISTINCT: user filters join one-to-one, and a filter on group members is a subquery.

    The page's primary keys come from one narrow query (an index walk on (provider, id)),
    the rows from a second by key. ``total`` is the provider's maintained count, used when
    there is no filter, so no COUNT(*) walks every row. ``anchors`` scopes a cache of keyset
    anchors (the id just before a startIndex): a sequential walk (Okta's import) and a
    repeated deep page are served by ``id > anchor`` instead of OFFSET, so any page costs
    about what the first does. The scope must change whenever positions can shift (a user
    removed), which the caller's provider removal counter guarantees. ``keyset(anchor, count)``
    returns the page after an anchor without building a query through the ORM: ids, or rows
    (dicts with an ``"id"``) that the caller renders as they are.
    """
    filter_text = request.query_params.get("filter")
    if filter_text:
        try:
            queryset = queryset.filter(filters.to_q(filter_text, attributes))
        except (ValidationError, ValueError, TypeError, FieldError) as exc:  # a bad date, UUID
            raise errors.InvalidFilter(f"Invalid value in filter: {exc}") from None
    sort = _sort_field(request, attributes)
    queryset = queryset.order_by(*_ordering(sort))
    ids_query = queryset.values_list("id", flat=True)
    start, count = paging(request)
    try:
        if filter_text or total is None:
            ids = list(ids_query[start - 1 : start - 1 + count]) if count else []
            if count and len(ids) < count and (ids or start == 1):
                total = start - 1 + len(ids)  # the page ran out: no COUNT(*) needed
            else:
                total = queryset.count()
            return total, start, ids
    except EmptyResultSet:  # a filter that selects nothing
        return 0, start, []
    except (ValidationError, ValueError, TypeError, FieldError) as exc:  # found building SQL
        raise errors.InvalidFilter(f"Invalid value in filter: {exc}") from None
    if count == 0 or start > total:
        return total, start, []
    use_anchors = bool(anchors) and not sort
    key = f"scim-anchor:{anchors}:{{}}"
    if start == 1:
        ids = keyset(0, count) if keyset and not sort else list(ids_query[:count])
    else:
        anchor = cache.get(key.format(start)) if use_anchors else None
        if anchor is not None:
            ids = keyset(anchor, count) if keyset else list(ids_query.filter(id__gt=anchor)[:count])
        else:
            # One row more, from just before the page: it is the anchor of this startIndex.
            ids = list(ids_query[start - 2 : start - 1 + count])
            if use_anchors and ids:
                cache.set(key.format(start), ids[0], ANCHOR_SECONDS)
            ids = ids[1:]
    if use_anchors and ids:
        last = ids[-1]
        cache.set(key.format(start + len(ids)), last["id"] if isinstance(last, dict) else last,
                  ANCHOR_SECONDS)  # fmt: skip
    return total, start, ids


# --- users ----------------------------------------------------------------------------------


class UserResourceMixin:
    def render_rows(self, rows: list[dict]) -> list[dict]:
        return self.projected(self.rendered(rows))

    def rendered(self, rows: list[dict]) -> list[dict]:
        base, namespace = self.provider.base_url, self.provider.org_attribute_schema
        return [
            user_rows.resource_from_row(
                row, base, user_rows.group_refs(row["groups"], base), namespace=namespace
            )
            for row in rows
        ]

    def projected(self, resources: list[dict]) -> list[dict]:
        params = self.request.query_params
        if params.get("attributes") or params.get("excludedAttributes"):
            resources = [project(resource, self.request) for resource in resources]
        return resources

    def get_link(self, scim_id: str, *, for_update: bool = False) -> ProviderUser:
        key = parse_uuid(scim_id)
        ahead = None
        if key and not for_update:
            ahead = self.rows_read_ahead(link_by_scim_id_statement(self.provider.pk, key))
        if not key:
            link = None
        elif ahead is not None:
            rows = ahead[1]
            link = link_from_row(rows[0], self.provider) if rows else None
        else:
            # for_update: the link and its user, locked together: user_sync writes through
            # both, and (PUT, PATCH) the user's open deactivation with them, for active=true.
            link = provider_user_by_scim_id(
                self.provider,
                key,
                for_update=for_update,
                open_deactivation=for_update and self.request.method in ("PUT", "PATCH"),
            )
        if link is None:
            raise errors.NotFound(f"User {scim_id!r} not found.")
        return link

    def note_org_attribute_schema(self, adapter: UserAdapter) -> None:
        """After a write: the admin's own namespace its organization attribute came in, kept
        for the answers (Provider.org_attribute_schema) when it is new."""
        urn = adapter.org_attribute_schema
        if urn is not None:
            services.note_org_attribute_schema(self.provider, urn)

    def respond(self, link: ProviderUser, status: int = 200) -> Response:
        """Answer with the user as saved (or read): the instances are the row, and its groups
        came with the locked read (``get_link``); a user this request created has none."""
        groups_json = None if status == 201 else link.groups_json
        row = user_rows.row_from_link(link, groups_json)
        rows = [row] if row is not None else user_rows.rows_by_ids([link.id])
        if not rows:  # DELETEd between the read and this one (a GET locks nothing)
            raise errors.NotFound(f"User {str(link.scim_id)!r} not found.")
        if status == 201:
            rows[0]["groups"] = []
        whole = self.rendered(rows)[0]
        response = Response(self.projected([whole])[0], status=status)
        response["ETag"] = whole["meta"]["version"]  # the projection may leave meta out
        if status == 201:
            response["Location"] = f"{self.provider.base_url}/Users/{link.scim_id}"
        return response


def _provisioning_error(exc: user_sync.ProvisioningError) -> errors.ScimError:
    if exc.kind == "conflict":
        return errors.Uniqueness(str(exc))
    return errors.InvalidValue(str(exc))


class UsersView(UserResourceMixin, ScimView):
    placement_on_post = True  # read with the provider (authentication.provider_for_request)
    placement = None

    def get(self, request, provider_slug):
        provider = self.provider
        params = request.query_params
        equality = filters.unique_user_equality(params.get("filter") or "")
        if equality is not None and not params.get("sortBy"):
            # At most one match: one statement, no parser, no COUNT (what page_of answers).
            start, count = paging(request)
            ahead = self.rows_read_ahead(user_rows.rows_where_statement(provider.pk, *equality))
            if ahead is not None:
                found = user_rows.rows_from(*ahead)
            else:
                found = user_rows.rows_where(provider, *equality)
            page = self.render_rows(found[start - 1 : start - 1 + count])
            return Response(list_response(page, len(found), start))
        total, start, ids = page_of(
            provider_users(provider),
            request,
            filter_terms.USER_FILTER_ATTRIBUTES,
            total=provider.user_count,
            anchors=f"users:{provider.pk}:{provider.user_removals}",
            keyset=lambda anchor, count: user_rows.rows_after(provider, anchor, count),
        )
        # A keyset page comes as rows already; an OFFSET or filtered page as ids.
        rows = ids if ids and isinstance(ids[0], dict) else user_rows.rows_by_ids(ids)
        return Response(list_response(self.render_rows(rows), total, start))

    def read_with_provider(self, provider_id: int) -> tuple[str, list] | None:
        """The read a GET of one user by userName or externalId (what every IdP sends
        before it creates or links a user) makes, for ``provider_id``: sent with the
        provider's own read (authentication.provider_for_request)."""
        params = self.request.query_params
        if self.request.method != "GET" or params.get("sortBy"):
            return None
        equality = filters.unique_user_equality(params.get("filter") or "")
        if equality is None:
            return None
        return user_rows.rows_where_statement(provider_id, *equality)

    def post(self, request, provider_slug):
        link = None
        if self.provider_assumed:
            # The provider as an earlier create read it (authentication.assumed_provider):
            # the create's one write checks it. Anything else, an error included, is
            # answered only after the provider is read and the credential checked again,
            # as for any request: a secret regenerated since gets its 401 first.
            try:
                link = self._create(assumed=True)
            except user_sync.StaleProvider as exc:  # nothing written: created below
                self.authenticate_again(stale=exc.stale)
            except Exception:  # the client's error (a 400), once its credential is checked
                self.authenticate_again(stale=False)
                raise
        if link is None:
            try:
                link = self._create()
            except IntegrityError:
                # The provider deleted while this create was written: its link's foreign
                # key failed at COMMIT. Authentication says so (401).
                self.authenticate_again(stale=False)
                raise
        return self.respond(link, status=201)

    def _create(self, *, assumed: bool = False):
        adapter = UserAdapter.from_resource(self.json_body())
        try:  # its own transaction (user_sync writes it in one round trip where it can)
            link = user_sync.create_user(
                self.provider,
                adapter.state,
                actor=self.actor,
                placement=self.placement,
                assumed=assumed,
            )
        except user_sync.ProvisioningError as exc:
            raise _provisioning_error(exc) from None
        self.note_org_attribute_schema(adapter)
        return link


class UserDetailView(UserResourceMixin, ScimView):
    def read_with_provider(self, provider_id: int) -> tuple[str, list] | None:
        """A GET by id's read of the user, sent with the provider's own read
        (authentication.provider_for_request)."""
        key = parse_uuid(self.kwargs.get("scim_id", ""))
        if self.request.method != "GET" or not key:
            return None
        return link_by_scim_id_statement(provider_id, key)

    def get(self, request, provider_slug, scim_id):
        link = self.get_link(scim_id)
        current = etag(link)
        check_if_match(request, current)
        if not_modified(request, current):
            return without_body(304, current)
        return self.respond(link)

    def put(self, request, provider_slug, scim_id):
        body = self.json_body()
        try:
            with later.transaction():
                link = self.get_link(scim_id, for_update=True)
                check_if_match(request, etag(link))
                adapter = UserAdapter.from_resource(body, current=state_of(link))
                link = user_sync.update_user(link, adapter.state, actor=self.actor)
        except user_sync.ProvisioningError as exc:
            raise _provisioning_error(exc) from None
        self.note_org_attribute_schema(adapter)
        return self.respond(link)

    def patch(self, request, provider_slug, scim_id):
        body = self.json_body()
        try:
            with later.transaction():
                link = self.get_link(scim_id, for_update=True)
                check_if_match(request, etag(link))
                adapter = UserAdapter(state_of(link), scim_id=str(link.scim_id))
                adapter.apply_patch(body)
                link = user_sync.update_user(link, adapter.state, actor=self.actor)
        except user_sync.ProvisioningError as exc:
            raise _provisioning_error(exc) from None
        self.note_org_attribute_schema(adapter)
        return self.respond(link)

    def delete(self, request, provider_slug, scim_id):
        with later.transaction():
            link = self.get_link(scim_id, for_update=True)
            check_if_match(request, etag(link))
            user_sync.remove_user(link, actor=self.actor)
        return Response(status=204)


class UnknownEndpointView(ScimView):
    """Anything else under a SCIM base URL: a SCIM 404 body, not an HTML page."""

    def _not_found(self, request, *args, **kwargs):
        raise errors.NotFound(f"No SCIM endpoint at {request.path}.")

    get = post = put = patch = delete = _not_found


class NotImplementedView(ScimView):
    """``/Me`` and ``/Bulk``: RFC 7644 §3.11 asks a service without /Me for 501, and §3.12
    gives 501 for an operation not supported (ServiceProviderConfig: bulk not supported)."""

    def _not_implemented(self, request, *args, **kwargs):
        endpoint = request.path.rstrip("/").rsplit("/", 1)[-1]
        raise errors.NotImplementedOperation(f"This service does not support /{endpoint}.")

    get = post = put = patch = delete = _not_implemented


class UsersSearchView(UsersView):
    placement_on_post = False  # its POST is a search
    http_method_names = ["post"]  # a search is a POST (RFC 7644 §3.4.3); GET /Users lists

    def post(self, request, provider_slug):
        use_search_body(request)
        return self.get(request, provider_slug)


class RootSearchView(UserResourceMixin, ScimView):
    """``POST /.search`` across resource types (RFC 7644 §3.4.3): users, then groups, paged
    as one list. In a filter, a term on an attribute one type lacks matches none of that
    type's resources; a sortBy one type lacks lists it unsorted after the rest; a filter no
    type can take is the first type's own 400."""

    def post(self, request, provider_slug):
        use_search_body(request)
        return self.search(request)

    def search(self, request):
        from .group_views import GroupsView

        start, count = paging(request)
        params = request._request.GET
        types, refused, view_classes = [], [], (UsersView, GroupsView)
        for view_class in view_classes:
            view = view_class()
            view.provider, view.request, view.kwargs = self.provider, request, self.kwargs
            query = params.copy()
            lenient = False
            try:
                total = self._list(view, query, 1, 0)["totalResults"]
            except errors.InvalidFilter as exc:
                refused.append(exc)
                # Should another type take the filter, on this one terms on attributes it
                # lacks match nothing (`displayName eq "Eng" or userName eq "a@…"` still
                # finds the group); refused for another reason, the type is left out.
                lenient = True
                try:
                    with filters.unknown_attributes_match_nothing():
                        total = self._list(view, query, 1, 0)["totalResults"]
                except errors.InvalidFilter:
                    continue
            except errors.InvalidValue:
                if not query.get("sortBy"):
                    raise
                # This type lacks the sortBy attribute: listed unsorted after the rest.
                query.pop("sortBy", None)
                query.pop("sortOrder", None)
                total = self._list(view, query, 1, 0)["totalResults"]
            types.append((view, query, total, lenient))
        if len(refused) == len(view_classes):  # no type takes the filter as written
            raise refused[0]
        resources: list[dict] = []
        first = 0  # positions before this type's, in the list of all types
        for view, query, total, lenient in types:
            position = start + len(resources)  # the next position this page wants
            wanted = count - len(resources)
            if wanted > 0 and first < position <= first + total:
                with filters.unknown_attributes_match_nothing() if lenient else nullcontext():
                    page = self._list(view, query, position - first, wanted)
                resources.extend(page["Resources"])
            first += total
        request._request.GET = params
        return Response(list_response(resources, first, start))

    @staticmethod
    def _list(view, query, start: int, count: int) -> dict:
        query = query.copy()
        query["startIndex"], query["count"] = str(start), str(count)
        view.request._request.GET = query
        return view.get(view.request, view.kwargs["provider_slug"]).data


class RootQueryView(RootSearchView):
    """``GET`` of the base URL itself: a query against the server root (RFC 7644 §3.4.2.1),
    with its query parameters, answered as ``POST /.search`` answers the same in a body."""

    http_method_names = ["get", "head"]

    def get(self, request, provider_slug):
        return self.search(request)
