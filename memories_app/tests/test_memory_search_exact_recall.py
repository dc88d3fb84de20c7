"""Per-user search is exact even when other users hold far more memories; global search through the HNSW
index (iterative scan) stays within the tenant and keeps high recall."""

from __future__ import annotations

import math
import random

from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from memories_app.embeddings import get_embedder
from memories_app.models import Memory, Scope
from memories_app.selectors import SearchScope, search_memories

DIMENSIONS = 384


def _unit(rng: random.Random, centre: list[float] | None = None) -> list[float]:
    vector = [rng.gauss(0, 1) + (centre[i] * 3 if centre else 0) for i in range(DIMENSIONS)]
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def _rows(tenant, rng, *, count, scope, user_id="", centres):
    model_id = get_embedder().model_id
    return [
        Memory(
            tenant=tenant,
            scope=scope,
            user_id=user_id,
            content=f"{user_id or 'global'} memory {n}",
            embedding=_unit(rng, rng.choice(centres)),
            embedding_model=model_id,
            dimensions=DIMENSIONS,
        )
        for n in range(count)
    ]


def _brute_force(memories, query, k):
    def cosine(vector):
        return sum(a * b for a, b in zip(vector, query, strict=True)) / math.sqrt(sum(v * v for v in vector))

    return [m.pk for m in sorted(memories, key=lambda m: -cosine(list(m.embedding)))[:k]]


def test_user_search_recall_at_10_is_exact_among_thousands_of_other_users_memories(world):
    rng = random.Random(5)
    centres = [_unit(rng) for _ in range(8)]  # clustered, as real embeddings are
    others = []
    for user in range(30):
        others += _rows(world.acme.tenant, rng, count=100, scope=Scope.USER, user_id=f"user-{user}", centres=centres)
    Memory.objects.bulk_create(others, batch_size=500)
    Memory.objects.bulk_create(
        _rows(world.acme.tenant, rng, count=200, scope=Scope.USER, user_id="alice", centres=centres)
    )
    alice = list(Memory.objects.filter(user_id="alice"))

    hits = total = 0
    for _ in range(20):
        query = _unit(rng, rng.choice(centres))
        found = search_memories(
            tenant=world.acme.tenant,
            vector=query,
            model_id=get_embedder().model_id,
            where=SearchScope(scopes=frozenset({Scope.USER}), user_id="alice"),
            k=10,
        )
        expected = _brute_force(alice, query, 10)
        hits += len({item.memory.pk for item in found} & set(expected))
        total += 10

    assert hits / total == 1.0


# The suite's rolled-back inserts stay in the HNSW graph as dead tuples until VACUUM, and they crowd the
# default candidate list (ef_search 100): recall then varies from run to run (0.74 was seen). A wider list
# makes this test about the scan's tenant filtering, not about graph luck; the benchmark tunes the default.
@override_settings(MEMORY_EXACT_SEARCH_MAX_ROWS=100, MEMORY_HNSW_EF_SEARCH=400)
def test_global_search_through_the_index_keeps_recall_and_stays_in_the_tenant(world):
    rng = random.Random(7)
    centres = [_unit(rng) for _ in range(8)]
    Memory.objects.bulk_create(_rows(world.outsider.tenant, rng, count=900, scope=Scope.GLOBAL, centres=centres))
    Memory.objects.bulk_create(_rows(world.acme.tenant, rng, count=300, scope=Scope.GLOBAL, centres=centres))
    acme = list(Memory.objects.filter(tenant=world.acme.tenant))

    hits = total = 0
    with CaptureQueriesContext(connection) as queries:
        for _ in range(10):
            query = _unit(rng, rng.choice(centres))
            found = search_memories(
                tenant=world.acme.tenant,
                vector=query,
                model_id=get_embedder().model_id,
                where=SearchScope(scopes=frozenset({Scope.GLOBAL})),
                k=10,
            )
            assert all(item.memory.tenant_id == world.acme.tenant.pk for item in found)
            hits += len({item.memory.pk for item in found} & set(_brute_force(acme, query, 10)))
            total += 10

    assert any("hnsw.iterative_scan" in q["sql"] for q in queries.captured_queries)
    assert hits / total >= 0.9, hits / total


@override_settings(MEMORY_EXACT_SEARCH_MAX_ROWS=100)
def test_global_search_beyond_the_exact_limit_is_answered_by_the_global_hnsw_index(world):
    rng = random.Random(11)
    centres = [_unit(rng) for _ in range(8)]
    Memory.objects.bulk_create(_rows(world.acme.tenant, rng, count=300, scope=Scope.GLOBAL, centres=centres))
    Memory.objects.bulk_create(
        _rows(world.acme.tenant, rng, count=300, scope=Scope.USER, user_id="bob", centres=centres)
    )
    with CaptureQueriesContext(connection) as queries:
        search_memories(
            tenant=world.acme.tenant,
            vector=_unit(rng, centres[0]),
            model_id=get_embedder().model_id,
            where=SearchScope(scopes=frozenset({Scope.GLOBAL})),
            k=10,
        )
    ranked = next(q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"] and "<=>" in q["sql"])

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + ranked)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "memory_embedding_hnsw_384" in plan, plan
    # At 100k global rows an anti-join against the hidden owners (which can never match a global memory) made
    # the planner scan every global row instead of walking the index, at 300 rows it still picked the index.
    assert "hiddenowner" not in ranked, ranked
