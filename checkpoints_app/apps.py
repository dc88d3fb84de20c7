from django.apps import AppConfig


class CheckpointsConfig(AppConfig):
    name = "checkpoints_app"
    verbose_name = "Checkpoints"
