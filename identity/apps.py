from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "Identity"

    def ready(self) -> None:
        from . import lookups, signals  # noqa: F401  (signals: the default org's delete guard)

        lookups.register()
