"""Indexes for the dashboard's sessions list at a million sessions (bench suite `dashboard`).

Built CONCURRENTLY (so the migration is not atomic): creating them on a live table blocks no writes.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

VISIBLE = models.Q(("erased_at__isnull", True))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sessions_app", "0003_session_erasure"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="agentsession",
            index=models.Index(condition=VISIBLE, fields=["-created_at", "-id"], name="session_recent"),
        ),
        AddIndexConcurrently(
            model_name="agentsession",
            index=models.Index(
                condition=VISIBLE, fields=["status", "-created_at", "-id"], name="session_status_recent"
            ),
        ),
        AddIndexConcurrently(
            model_name="agentsession",
            index=models.Index(condition=VISIBLE, fields=["user_id"], name="session_user"),
        ),
        AddIndexConcurrently(
            model_name="agentsession",
            index=models.Index(
                condition=VISIBLE, fields=["session_id"], name="session_id_prefix", opclasses=["varchar_pattern_ops"]
            ),
        ),
    ]
