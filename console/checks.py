"""System checks of Gatehouse's own settings (``manage.py check --deploy``)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security)  # every start, not only check --deploy
def credential_key_is_long(app_configs, **kwargs):
    """A short GATEHOUSE_CREDENTIAL_KEY weakens every provider's secret digest. A warning,
    not a refusal to start: changing the key invalidates every provider's secret."""
    if len(settings.GATEHOUSE_CREDENTIAL_KEY) >= 32:
        return []
    return [
        Warning(
            "GATEHOUSE_CREDENTIAL_KEY is shorter than 32 characters.",
            hint="Use a long random key (the default is generated into var/credential_key); "
            "changing it makes every provider's secret invalid until regenerated.",
            id="gatehouse.W001",
        )
    ]
