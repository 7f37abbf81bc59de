"""SCIM 2.0 Groups endpoints (RFC 7644) under ``/scim/v2/<provider-slug>/Groups``.

Same shape as the Users views (provisioning/scim/views.py), whose paging, ETag and
precondition helpers they reuse: scoped by ``provider_groups`` (the security boundary),
filtered, counted and paged in SQL, written through ``provisioning.group_sync`` inside one
transaction per request.
"""

from __future__ import annotations

import orjson
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models.expressions import RawSQL
from rest_framework.response import Response

from provisioning import group_sync, user_sync
from provisioning.models import GroupMembership, ScimGroup
from provisioning.selectors import group_members_sql, provider_groups

from . import errors, filter_terms
from .base import (
    ScimView,
    attribute_names,
    check_if_match,
    list_response,
    not_modified,
    parse_uuid,
    project,
    use_search_body,
    without_body,
)
from .groups import GroupAdapter, etag, member_resource, to_resource
from .schema import CORE_GROUP
from .user_rows import uuid_text
from .views import page_of

_CORE_GROUP = CORE_GROUP.lower()


def _members_excluded(request) -> bool:
    """Entra lists groups with ``excludedAttributes=members``; Okta may ask for
    ``attributes=displayName``: either way the member query is not run. Names may carry the
    core schema's URN (RFC 7644 §3.10), which alone names every core attribute."""

    def names(parameter: str) -> set[str]:
        listed = attribute_names(request.query_params.get(parameter))
        return {"members" if name.lower() == _CORE_GROUP else name.lower() for name in listed}

    excluded = names("excludedAttributes")
    included = {name.split(".")[0] for name in names("attributes")}
    return "members" in excluded or bool(included and "members" not in included)


# A PATCH of a group with more members than this answers 204 (unless the request shapes its
# answer with attributes/excludedAttributes); a smaller group's answer is the whole group.
PATCH_ANSWER_MAX_MEMBERS = 1000


def _answer_is_the_whole_membership(request, group: ScimGroup) -> bool:
    if request.query_params.get("attributes") or request.query_params.get("excludedAttributes"):
        return False
    # Counts at most one membership past the limit: the same cost in any group.
    over = GroupMembership.objects.filter(group=group)[: PATCH_ANSWER_MAX_MEMBERS + 1]
    return over.count() > PATCH_ANSWER_MAX_MEMBERS


class GroupResourceMixin:
    def groups_by_ids(self, ids: list[int]) -> list[ScimGroup]:
        """The page's groups in ``ids`` order, each with its members, in one statement (one
        snapshot: a group's version always matches the members it is shown with)."""
        queryset = ScimGroup.objects.filter(id__in=ids)
        with_members = not _members_excluded(self.request)
        if with_members:
            # Only users this provider still provisions are members (a user DELETEd through
            # /Users leaves the group at once). Ids as text, no model instances: a group of
            # 10,000 members rendered in ~40 ms, where instances of memberships, users and
            # links took ~800.
            sql = RawSQL(group_members_sql(), [self.provider.pk])
            queryset = queryset.annotate(members_json=sql)
        by_id = {group.id: group for group in queryset}
        groups = [by_id[i] for i in ids if i in by_id]
        if with_members:
            for group in groups:
                pairs = orjson.loads(group.members_json or "[]")
                if connection.vendor != "postgresql":  # ordered there by the query
                    pairs.sort()
                group.visible_member_ids = [uuid_text(scim_id) for _, scim_id in pairs]
        return groups

    def render(self, groups: list[ScimGroup]) -> list[dict]:
        base = self.provider.base_url
        resources = []
        for group in groups:
            members = None
            if hasattr(group, "visible_member_ids"):
                members = [member_resource(scim_id, base) for scim_id in group.visible_member_ids]
            resources.append(project(to_resource(group, base, members), self.request))
        return resources

    def get_group(self, scim_id: str, *, for_update: bool = False) -> ScimGroup:
        key = parse_uuid(scim_id)
        queryset = provider_groups(self.provider).select_related("provider")
        if for_update:
            queryset = queryset.select_for_update(of=("self",))
        group = queryset.filter(scim_id=key).first() if key else None
        if group is None:
            raise errors.NotFound(f"Group {scim_id!r} not found.")
        return group

    def respond(self, group: ScimGroup, status: int = 200) -> Response:
        group = self.groups_by_ids([group.id])[0]
        response = Response(self.render([group])[0], status=status)
        response["ETag"] = etag(group)
        if status == 201:
            response["Location"] = f"{self.provider.base_url}/Groups/{group.scim_id}"
        return response


def _group_error(exc: user_sync.ProvisioningError) -> errors.ScimError:
    if exc.kind == "conflict":
        return errors.Uniqueness(str(exc))
    return errors.InvalidValue(str(exc))


class GroupsView(GroupResourceMixin, ScimView):
    def get(self, request, provider_slug):
        queryset = provider_groups(self.provider)
        sort_by = (request.query_params.get("sortBy") or "").strip().lower()
        if sort_by.removeprefix(CORE_GROUP.lower() + ":").split(".")[0].startswith("members"):
            # Sorting by a multi-valued attribute would list a group once per member.
            raise errors.InvalidValue(f"Cannot sort by {request.query_params['sortBy']!r}.")
        try:
            total, start, ids = page_of(queryset, request, filter_terms.GROUP_FILTER_ATTRIBUTES)
        except ValidationError as exc:
            # id and members.value are UUIDs: a value that is none ('id eq "zz"', 'members
            # pr' compares with "") fails only when the query runs, past the filter parser.
            raise errors.InvalidFilter(f"Invalid value in filter: {exc.messages[0]}") from None
        return Response(list_response(self.render(self.groups_by_ids(ids)), total, start))

    def post(self, request, provider_slug):
        adapter = GroupAdapter.from_resource(self.json_body())
        try:
            with transaction.atomic():
                group = group_sync.create_group(
                    self.provider, adapter.state, referenced=adapter.referenced, actor=self.actor
                )
        except user_sync.ProvisioningError as exc:
            raise _group_error(exc) from None
        return self.respond(group, status=201)


class GroupDetailView(GroupResourceMixin, ScimView):
    def get(self, request, provider_slug, scim_id):
        group = self.get_group(scim_id)
        current = etag(group)
        check_if_match(request, current)
        if not_modified(request, current):
            return without_body(304, current)
        return self.respond(group)

    def put(self, request, provider_slug, scim_id):
        body = self.json_body()
        try:
            with transaction.atomic():
                group = self.get_group(scim_id, for_update=True)
                check_if_match(request, etag(group))
                adapter = GroupAdapter.from_resource(body, scim_id=str(group.scim_id))
                group = group_sync.update_group(
                    group, adapter.state, referenced=adapter.referenced, actor=self.actor
                )
        except user_sync.ProvisioningError as exc:
            raise _group_error(exc) from None
        return self.respond(group)

    def patch(self, request, provider_slug, scim_id):
        body = self.json_body()
        try:
            with transaction.atomic():
                group = self.get_group(scim_id, for_update=True)
                check_if_match(request, etag(group))
                adapter = GroupAdapter.for_patch(group)
                adapter.apply_patch(body)
                group = group_sync.update_group(
                    group, adapter.staged, referenced=adapter.referenced, actor=self.actor
                )
        except user_sync.ProvisioningError as exc:
            raise _group_error(exc) from None
        if _answer_is_the_whole_membership(request, group):
            # RFC 7644 §3.5.2 lets a PATCH answer 200 with the whole resource or 204; Entra
            # and Okta take either and read neither. A big group's whole body (1.5 MB at
            # 10,000 members, ~80 ms to build) would dwarf the change it answers.
            return without_body(204, etag(group))
        return self.respond(group)

    def delete(self, request, provider_slug, scim_id):
        with transaction.atomic():
            group = self.get_group(scim_id, for_update=True)
            check_if_match(request, etag(group))
            group_sync.remove_group(group, actor=self.actor)
        return Response(status=204)


class GroupsSearchView(GroupsView):
    http_method_names = ["post"]  # a search is a POST (RFC 7644 §3.4.3); GET /Groups lists

    def post(self, request, provider_slug):
        use_search_body(request)
        return self.get(request, provider_slug)
