"""Client vectors are judged on the float4 values pgvector keeps and compares: one that rounds to all zeros,
or whose length would overflow or underflow float4's cosine arithmetic, is a 400 (it could never be found,
or would score wrongly); lengths inside the bounds score their own direction as 1."""

from __future__ import annotations

import math

import pytest

from memories_app.models import Memory
from memories_app.tests.conftest import create

DIMENSIONS = 384  # the hashing embedder's


def search(client, **body):
    return client.post("/api/v1/memories/search", body, format="json")


UNUSABLE = {
    "rounds-to-zero": ([1e-50] * DIMENSIONS, "all-zero"),
    "rounds-to-zero-below-the-smallest-float4": ([1e-46] * DIMENSIONS, "all-zero"),
    "too-short-for-float4-cosine": ([1e-20] * DIMENSIONS, "length"),
    "too-long-for-float4-cosine": ([1e20] * DIMENSIONS, "length"),
    "one-huge-component": ([1e19] + [0.0] * (DIMENSIONS - 1), "length"),
}


@pytest.mark.parametrize("case", list(UNUSABLE), ids=list(UNUSABLE))
def test_create_with_a_vector_unusable_in_float4_returns_400_and_stores_nothing(world, case):
    vector, why = UNUSABLE[case]

    response = create(world.acme.client, scope="user", user_id="alice", content="tea", embedding=vector)

    assert response.status_code == 400, response.content
    assert why in response.json()["error"]["details"]["fields"]["embedding"][0]
    assert Memory.objects.count() == 0


@pytest.mark.parametrize("case", list(UNUSABLE), ids=list(UNUSABLE))
def test_a_batch_with_a_vector_unusable_in_float4_returns_400_naming_the_item_and_stores_nothing(world, case):
    vector, why = UNUSABLE[case]
    items = [
        {"scope": "user", "user_id": "alice", "content": "fine", "embedding": [0.5] * DIMENSIONS},
        {"scope": "user", "user_id": "alice", "content": "unusable", "embedding": vector},
    ]

    response = world.acme.client.post("/api/v1/memories/batch", {"memories": items}, format="json")

    assert response.status_code == 400, response.content
    assert why in response.json()["error"]["details"]["fields"]["memories[1].embedding"][0]
    assert Memory.objects.count() == 0


@pytest.mark.parametrize("case", list(UNUSABLE), ids=list(UNUSABLE))
def test_search_with_a_vector_unusable_in_float4_returns_400(world, case):
    vector, why = UNUSABLE[case]

    response = search(world.acme.client, embedding=vector, user_id="alice")

    assert response.status_code == 400, response.content
    assert why in response.json()["error"]["details"]["fields"]["embedding"][0]


def test_vectors_at_the_bounds_of_the_allowed_length_find_their_own_direction_with_score_1(world):
    # Lengths just inside 1e-10 and 1e10: float4's sums of squares and products neither underflow nor overflow.
    lengths = {"short": 1.01e-10, "unit": 1.0, "long": 0.99e10}
    ids = {}
    for name, length in lengths.items():
        vector = [length / math.sqrt(DIMENSIONS)] * DIMENSIONS
        created = create(world.acme.client, scope="user", user_id="alice", content=name, embedding=vector)
        assert created.status_code == 201, created.json()
        ids[created.json()["id"]] = name

    for length in lengths.values():
        query = [length / math.sqrt(DIMENSIONS)] * DIMENSIONS
        results = search(world.acme.client, embedding=query, user_id="alice", k=10, min_score=0.5).json()["results"]

        assert {ids[item["memory"]["id"]] for item in results} == set(lengths)
        assert all(math.isclose(item["score"], 1.0, abs_tol=1e-5) for item in results)
