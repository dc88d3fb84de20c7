"""One keyed batch per Idempotency-Key and session, held by a unique index (see Event.claims_key).

Cheap on a large table: the column is nullable without a default (PostgreSQL adds it without rewriting a row),
and the unique index covers only the rows that claim a key (none yet: rows from before keep NULL, so the
batches already stored, whose events all carry their key, cannot break it) and is built CONCURRENTLY, blocking
no appends (so the migration is not atomic). Django has no concurrent form of AddConstraint: the index is
created by SQL, the same index the constraint stands for.
"""

from django.db import migrations, models

CLAIMS = models.Q(("claims_key", True))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sessions_app", "0102_session_archived_from"),
    ]

    operations = [
        # Each step stands alone (the migration is not atomic): one that an interruption left done is skipped
        # when migrate runs again, and the index is built again.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="event",
                    name="claims_key",
                    field=models.BooleanField(null=True),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'ALTER TABLE "sessions_app_event" ADD COLUMN IF NOT EXISTS "claims_key" boolean NULL',
                    reverse_sql='ALTER TABLE "sessions_app_event" DROP COLUMN IF EXISTS "claims_key"',
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="event",
                    constraint=models.UniqueConstraint(
                        condition=CLAIMS, fields=("session", "idempotency_key"), name="event_idempotency_key_once"
                    ),
                ),
            ],
            database_operations=[
                # A CONCURRENTLY build that was interrupted leaves an invalid index of this name: build it again.
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "event_idempotency_key_once"', reverse_sql=migrations.RunSQL.noop
                ),
                migrations.RunSQL(
                    'CREATE UNIQUE INDEX CONCURRENTLY "event_idempotency_key_once" ON "sessions_app_event" '
                    '("session_id", "idempotency_key") WHERE "claims_key"',
                    reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS "event_idempotency_key_once"',
                ),
            ],
        ),
    ]
