"""Migrations that build a unique index CONCURRENTLY cannot be atomic: each step commits on its own. One
interrupted after its columns were added, with the index left INVALID (what a cancelled or failed concurrent
build leaves), is finished by running migrate again: the columns are kept, the index is built again, valid."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# (app, the migration before, the migration that builds the index, its SQL up to the index, the index)
INTERRUPTED = [
    (
        "memories_app",
        "0007_outbox_failed_at",
        "0008_memory_idempotency_key",
        'ALTER TABLE "memories_app_memory" ADD COLUMN "idempotency_key" varchar(80) NULL, '
        'ADD COLUMN "request_fingerprint" varchar(64) NULL; '
        'CREATE UNIQUE INDEX "memory_idempotency_key" ON "memories_app_memory" ("tenant_id", "idempotency_key") '
        'WHERE "idempotency_key" IS NOT NULL',
        "memory_idempotency_key",
    ),
    (
        "sessions_app",
        "0102_session_archived_from",
        "0103_event_idempotency_key_once",
        'ALTER TABLE "sessions_app_event" ADD COLUMN "claims_key" boolean NULL; '
        'CREATE UNIQUE INDEX "event_idempotency_key_once" ON "sessions_app_event" ("session_id", "idempotency_key") '
        'WHERE "claims_key"',
        "event_idempotency_key_once",
    ),
]


def _index_is_valid(name: str) -> bool | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("app", "before", "migration", "partial_sql", "index"), INTERRUPTED)
def test_an_index_migration_interrupted_after_its_columns_is_finished_by_migrating_again(
    app: str, before: str, migration: str, partial_sql: str, index: str
) -> None:
    MigrationExecutor(connection).migrate([(app, before)])
    try:
        with connection.cursor() as cursor:
            cursor.execute(partial_sql)
            # What an interrupted CREATE INDEX CONCURRENTLY leaves behind: the index, marked invalid.
            cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [index])
        assert _index_is_valid(index) is False

        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([(app, migration)])

        assert _index_is_valid(index) is True
        assert (app, migration) in MigrationExecutor(connection).loader.applied_migrations
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
