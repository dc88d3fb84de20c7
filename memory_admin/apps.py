from django.apps import AppConfig


class MemoryAdminConfig(AppConfig):
    name = "memory_admin"
    verbose_name = "Agent memory service"

    def ready(self) -> None:
        from lifecycle_app.storage import archive_storage
        from memories_app.embeddings import check_configuration

        # Load the Celery app so @shared_task binds to it in every process, web and worker alike.
        from memory_admin import celery  # noqa: F401

        # Settings that only the embedder and the archive storage can judge, checked now rather than by the
        # first memory write (a 500 each) or the first archival job hours later.
        check_configuration()
        archive_storage()
