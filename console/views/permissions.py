"""Every console page goes through ``identity_admin_required``: signed in, active, and holding
the Identity Management Administrator role (or superuser). SCIM credentials never open it:
they are not sessions."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied


def identity_admin_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user.is_identity_admin:
            raise PermissionDenied("Identity Management Administrator role required.")
        return view(request, *args, **kwargs)

    return wrapper
