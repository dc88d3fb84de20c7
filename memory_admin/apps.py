from django.apps import AppConfig


class MemoryAdminConfig(AppConfig):
    name = "memory_admin"
    verbose_name = "Agent memory service"

    def ready(self) -> None:
        # Load the Celery app so @shared_task binds to it in every process, web and worker alike.
        from memory_admin import celery  # noqa: F401
