from django.urls import include, path

from console.views import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("console/", include("console.views.urls")),
    path("", include("provisioning.scim.urls")),
]

# Requests Django refuses before any view get a SCIM error body under /scim/.
handler400 = "provisioning.scim.errors.bad_request"
handler404 = "provisioning.scim.errors.not_found"
