from django.urls import re_path

from . import group_views, views

app_name = "scim"

# Per-provider base URL: /scim/v2/<provider-slug>/… (PRODUCT.md "Provisioning provider").
# Trailing slashes are optional: IdPs differ.
_base = r"^scim/v2/(?P<provider_slug>[-a-zA-Z0-9_]+)/"

urlpatterns = [
    re_path(_base + r"ServiceProviderConfigs?/?$", views.ServiceProviderConfigView.as_view()),
    re_path(_base + r"ResourceTypes/?$", views.ResourceTypesView.as_view()),
    re_path(_base + r"ResourceTypes/(?P<resource_id>[^/]+)/?$", views.ResourceTypesView.as_view()),
    re_path(_base + r"Schemas/?$", views.SchemasView.as_view()),
    re_path(_base + r"Schemas/(?P<schema_id>[^/]+)/?$", views.SchemasView.as_view()),
    re_path(_base + r"\.search/?$", views.RootSearchView.as_view()),
    re_path(_base + r"?$", views.RootQueryView.as_view()),
    re_path(_base + r"Users/\.search/?$", views.UsersSearchView.as_view()),
    re_path(_base + r"Groups/\.search/?$", group_views.GroupsSearchView.as_view()),
    re_path(_base + r"Users/?$", views.UsersView.as_view(), name="users"),
    re_path(_base + r"Users/(?P<scim_id>[^/]+)/?$", views.UserDetailView.as_view(), name="user"),
    re_path(_base + r"Groups/?$", group_views.GroupsView.as_view(), name="groups"),
    re_path(
        _base + r"Groups/(?P<scim_id>[^/]+)/?$", group_views.GroupDetailView.as_view(), name="group"
    ),
    re_path(_base + r"(?:Me|Bulk)(?:/.*)?$", views.NotImplementedView.as_view()),
    # Must stay last: everything else under a SCIM base URL is a SCIM 404.
    re_path(
        # [\s\S]: a path with a line break (…/Users%0a) is this provider's 404 as well.
        r"^scim/v2/(?P<provider_slug>[-a-zA-Z0-9_]+)(?:/[\s\S]*)?$",
        views.UnknownEndpointView.as_view(),
    ),
]
