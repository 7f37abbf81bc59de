from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Gatehouse console"

    def ready(self):
        from console import checks  # noqa: F401 - registers the checks
