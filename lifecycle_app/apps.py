from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "lifecycle_app"
    verbose_name = "Lifecycle"

    def ready(self) -> None:
        from memory_admin.metrics import register_stored_data_collector

        register_stored_data_collector()
