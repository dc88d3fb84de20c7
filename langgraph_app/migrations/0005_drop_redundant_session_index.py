"""The session foreign key's own index is dropped: each table's unique index starts with the session and serves
every lookup by it, and the extra B-tree was written on every insert. Dropped concurrently (no lock on writes,
so not in a transaction); only the index goes, the foreign key constraint stays as it is."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("langgraph_app", "0004_store_expiry_index"),
        ("sessions_app", "0101_drop_redundant_session_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="channelblob",
                    name="session",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="langgraph_blobs",
                        to="sessions_app.agentsession",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "langgraph_app_channelblob_session_id_735ce593"',
                    reverse_sql='CREATE INDEX CONCURRENTLY IF NOT EXISTS "langgraph_app_channelblob_session_id_735ce593" ON "langgraph_app_channelblob" ("session_id")',
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="pendingwrite",
                    name="session",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="langgraph_writes",
                        to="sessions_app.agentsession",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "langgraph_app_pendingwrite_session_id_cffb6274"',
                    reverse_sql='CREATE INDEX CONCURRENTLY IF NOT EXISTS "langgraph_app_pendingwrite_session_id_cffb6274" ON "langgraph_app_pendingwrite" ("session_id")',
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="threadcheckpoint",
                    name="session",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="langgraph_checkpoints",
                        to="sessions_app.agentsession",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "langgraph_app_threadcheckpoint_session_id_c23b91ef"',
                    reverse_sql='CREATE INDEX CONCURRENTLY IF NOT EXISTS "langgraph_app_threadcheckpoint_session_id_c23b91ef" ON "langgraph_app_threadcheckpoint" ("session_id")',
                ),
            ],
        ),
    ]
