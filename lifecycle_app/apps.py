from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "lifecycle_app"
    verbose_name = "Lifecycle"

    def ready(self) -> None:
        from lifecycle_app import lifetimes  # noqa: F401  (connects its setting_changed receiver)
        from memory_admin.metrics import register_stored_data_collector

        register_stored_data_collector()
