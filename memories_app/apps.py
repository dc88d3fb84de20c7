from django.apps import AppConfig


class MemoriesConfig(AppConfig):
    name = "memories_app"
    verbose_name = "Long-term memories"

    def ready(self) -> None:
        from memories_app.metrics import register_collector

        register_collector()
