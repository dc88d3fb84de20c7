"""The session foreign key's own index is dropped: each table's unique index starts with the session and serves
every lookup by it, and the extra B-tree was written on every insert. Dropped concurrently (no lock on writes,
so not in a transaction); only the index goes, the foreign key constraint stays as it is."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("checkpoints_app", "0002_retention_anchor"),
        ("sessions_app", "0101_drop_redundant_session_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="checkpoint",
                    name="session",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="checkpoints",
                        to="sessions_app.agentsession",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "checkpoints_app_checkpoint_session_id_f31e65c0"',
                    reverse_sql='CREATE INDEX CONCURRENTLY IF NOT EXISTS "checkpoints_app_checkpoint_session_id_f31e65c0" ON "checkpoints_app_checkpoint" ("session_id")',
                ),
            ],
        ),
    ]
