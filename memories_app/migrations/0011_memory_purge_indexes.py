"""The purge's indexes split by Idempotency-Key: deleted memories stored without one by deletion time, those
stored with one tenant by tenant by creation time (see Memory.Meta). With one index over every deleted memory,
each purge step read again all the keyed ones kept for a retry before it reached one it could remove.

Both are partial indexes over deleted rows only, built CONCURRENTLY (so the migration is not atomic): building
them on a live table blocks no writes. The old index goes once they are there.
"""

from django.db import migrations, models

UNKEYED = models.Q(("deleted_at__isnull", False), ("idempotency_key__isnull", True))
KEYED = models.Q(("deleted_at__isnull", False), ("idempotency_key__isnull", False))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("memories_app", "0010_erased_request_keys"),
    ]

    operations = [
        # Each step stands alone (the migration is not atomic): one that an interruption left done is skipped
        # when migrate runs again, and an index it left half built (invalid) is built again.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="memory",
                    index=models.Index(condition=UNKEYED, fields=["deleted_at"], name="memory_deleted_unkeyed"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "memory_deleted_unkeyed"', reverse_sql=migrations.RunSQL.noop
                ),
                migrations.RunSQL(
                    'CREATE INDEX CONCURRENTLY "memory_deleted_unkeyed" ON "memories_app_memory" ("deleted_at") '
                    'WHERE "deleted_at" IS NOT NULL AND "idempotency_key" IS NULL',
                    reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS "memory_deleted_unkeyed"',
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="memory",
                    index=models.Index(
                        condition=KEYED, fields=["tenant", "created_at", "deleted_at"], name="memory_deleted_keyed"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "memory_deleted_keyed"', reverse_sql=migrations.RunSQL.noop
                ),
                migrations.RunSQL(
                    'CREATE INDEX CONCURRENTLY "memory_deleted_keyed" ON "memories_app_memory" '
                    '("tenant_id", "created_at", "deleted_at") '
                    'WHERE "deleted_at" IS NOT NULL AND "idempotency_key" IS NOT NULL',
                    reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS "memory_deleted_keyed"',
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="memory", name="memory_deleted"),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "memory_deleted"',
                    reverse_sql='CREATE INDEX CONCURRENTLY IF NOT EXISTS "memory_deleted" ON "memories_app_memory" '
                    '("deleted_at") WHERE "deleted_at" IS NOT NULL',
                ),
            ],
        ),
    ]
