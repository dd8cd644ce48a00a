from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Project wiring; its management commands run the platform (`bootstrap`, `serve`)."""

    name = "config"
    verbose_name = "Modelgate"
