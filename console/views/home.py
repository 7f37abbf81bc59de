from django.shortcuts import render

from console.views.permissions import identity_admin_required
from identity.models import Organization, User, UserStatus


@identity_admin_required
def home(request):
    counts = {status.label: User.objects.filter(status=status).count() for status in UserStatus}
    return render(
        request,
        "console/home.html",
        {"organizations": Organization.objects.count(), "user_counts": counts},
    )
