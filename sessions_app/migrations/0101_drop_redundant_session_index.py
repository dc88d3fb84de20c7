"""The session foreign key's own index is dropped: each table's unique index starts with the session and serves
every lookup by it, and the extra B-tree was written on every insert. Dropped concurrently (no lock on writes,
so not in a transaction); only the index goes, the foreign key constraint stays as it is."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sessions_app", "0100_dashboard_session_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="event",
                    name="session",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="sessions_app.agentsession",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "sessions_app_event_session_id_c115b7c5"',
                    reverse_sql='CREATE INDEX CONCURRENTLY IF NOT EXISTS "sessions_app_event_session_id_c115b7c5" ON "sessions_app_event" ("session_id")',
                ),
            ],
        ),
    ]
