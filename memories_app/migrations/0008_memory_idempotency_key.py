"""The Idempotency-Key each memory was stored with (see Memory.idempotency_key), unique per tenant.

Cheap on a large table: the columns are nullable without a default (PostgreSQL adds them without rewriting a
row), and the unique index covers only keyed rows (none yet) and is built CONCURRENTLY, blocking no writes
(so the migration is not atomic). Django has no concurrent form of AddConstraint: the index is created by SQL,
the same index the constraint stands for.
"""

from django.db import migrations, models

KEYED = models.Q(("idempotency_key__isnull", False))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("memories_app", "0007_outbox_failed_at"),
    ]

    operations = [
        # Each step stands alone (the migration is not atomic): one that an interruption left done is skipped
        # when migrate runs again, and the index is built again.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="memory",
                    name="idempotency_key",
                    field=models.CharField(blank=True, max_length=80, null=True),
                ),
                migrations.AddField(
                    model_name="memory",
                    name="request_fingerprint",
                    field=models.CharField(blank=True, max_length=64, null=True),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'ALTER TABLE "memories_app_memory" ADD COLUMN IF NOT EXISTS "idempotency_key" varchar(80) NULL, '
                    'ADD COLUMN IF NOT EXISTS "request_fingerprint" varchar(64) NULL',
                    reverse_sql='ALTER TABLE "memories_app_memory" DROP COLUMN IF EXISTS "idempotency_key", '
                    'DROP COLUMN IF EXISTS "request_fingerprint"',
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="memory",
                    constraint=models.UniqueConstraint(
                        condition=KEYED, fields=("tenant", "idempotency_key"), name="memory_idempotency_key"
                    ),
                ),
            ],
            database_operations=[
                # A CONCURRENTLY build that was interrupted leaves an invalid index of this name: build it again.
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "memory_idempotency_key"', reverse_sql=migrations.RunSQL.noop
                ),
                migrations.RunSQL(
                    'CREATE UNIQUE INDEX CONCURRENTLY "memory_idempotency_key" ON "memories_app_memory" '
                    '("tenant_id", "idempotency_key") WHERE "idempotency_key" IS NOT NULL',
                    reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS "memory_idempotency_key"',
                ),
            ],
        ),
    ]
