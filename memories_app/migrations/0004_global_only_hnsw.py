"""The HNSW indexes cover global memories only (see memories_app/vector_index.py for why).

Every existing `memory_embedding_hnsw_<N>` index (the migrated sizes and any `manage.py reembed` created) is
dropped and rebuilt with the global-scope predicate; the rebuild reads only the global rows.
"""

from django.db import migrations

PREFIX = "memory_embedding_hnsw_"


def _existing_sizes(cursor) -> list[int]:
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'memories_app_memory' AND indexname LIKE %s", [PREFIX + "%"]
    )
    return sorted(int(name[len(PREFIX) :]) for (name,) in cursor.fetchall() if name[len(PREFIX) :].isdigit())


def _rebuild(apps, schema_editor, *, predicate: str) -> None:
    with schema_editor.connection.cursor() as cursor:
        for size in _existing_sizes(cursor):
            cursor.execute(f"DROP INDEX IF EXISTS {PREFIX}{size}")
            cursor.execute(
                f"CREATE INDEX {PREFIX}{size} ON memories_app_memory "
                f"USING hnsw ((embedding::vector({size})) vector_cosine_ops) WHERE dimensions = {size}{predicate}"
            )


def global_only(apps, schema_editor) -> None:
    _rebuild(apps, schema_editor, predicate=" AND scope = 'global'")


def every_scope(apps, schema_editor) -> None:
    _rebuild(apps, schema_editor, predicate="")


class Migration(migrations.Migration):
    dependencies = [("memories_app", "0003_hnsw_indexes")]
    operations = [migrations.RunPython(global_only, every_scope)]
