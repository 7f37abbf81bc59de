from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from console.views import home

app_name = "console"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("index.html", RedirectView.as_view(pattern_name="console:home")),
]
