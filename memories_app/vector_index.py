"""The approximate-search (HNSW) indexes: one partial expression index per vector dimension, global scope only.

The `embedding` column has no fixed dimension, and HNSW needs one, so each index covers the rows of one
dimension through a cast: `(embedding::vector(N)) WHERE dimensions = N AND scope = 'global'`. A query uses it
only when it orders by the same cast expression and filters on `dimensions = N` and the global scope; ordering
by the plain column never touches it, which is how per-user searches stay exact scans.

Session and user memories are left out of the graph on purpose: their searches are exact scans of one owner's
rows (found through a b-tree), so an HNSW entry for them would only cost every write a graph insertion (the
expensive part of an insert at a million rows) and crowd the global searches' candidate lists.
"""

from __future__ import annotations

from django.db import connection

#: Created by the migrations: the hashing and MiniLM size, and text-embedding-3-small's.
MIGRATED_DIMENSIONS = (384, 1536)
MAX_INDEXED_DIMENSIONS = 2000  # pgvector's HNSW limit for `vector`
INDEX_PREFIX = "memory_embedding_hnsw_"


def index_name(dimensions: int) -> str:
    return f"{INDEX_PREFIX}{int(dimensions)}"


def create_index_sql(dimensions: int, *, concurrently: bool = False) -> str:
    size = int(dimensions)
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {index_name(size)} "
        f"ON memories_app_memory USING hnsw ((embedding::vector({size})) vector_cosine_ops) "
        f"WHERE dimensions = {size} AND scope = 'global'"
    )


def ensure_index(dimensions: int) -> bool:
    """Create the HNSW index for this dimension if missing (without blocking writes). False above the limit."""
    if dimensions > MAX_INDEXED_DIMENSIONS:
        return False
    # CONCURRENTLY cannot run inside a transaction (for example under a test's transaction).
    with connection.cursor() as cursor:
        cursor.execute(create_index_sql(dimensions, concurrently=not connection.in_atomic_block))
    return True
