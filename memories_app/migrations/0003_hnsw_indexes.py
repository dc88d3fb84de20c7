"""Approximate-search indexes for the two common embedding sizes (see memories_app/vector_index.py).

Other sizes get theirs from `manage.py reembed`. Plain CREATE INDEX (not CONCURRENTLY) is fine here: the
table is new when this runs.
"""

from django.db import migrations

DIMENSIONS = (384, 1536)


def _create(size: int) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS memory_embedding_hnsw_{size} ON memories_app_memory "
        f"USING hnsw ((embedding::vector({size})) vector_cosine_ops) WHERE dimensions = {size}"
    )


class Migration(migrations.Migration):
    dependencies = [("memories_app", "0002_memories")]
    operations = [
        migrations.RunSQL(_create(size), reverse_sql=f"DROP INDEX IF EXISTS memory_embedding_hnsw_{size}")
        for size in DIMENSIONS
    ]
