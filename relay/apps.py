from django.apps import AppConfig


class RelayConfig(AppConfig):
    name = "relay"

    def ready(self) -> None:
        from relay.invalidation import watch_models

        watch_models()
