"""An OpenAI-compatible server that answers 200 with something other than one usable vector per text: every
write and search that needs it is a 503 naming the cause, with nothing stored (never a 500, never a vector
that can never be found)."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from typing import Any

import pytest

from memories_app.models import Memory
from memories_app.tests.conftest import create

DIMENSIONS = 1536  # the fake server's, as text-embedding-3-small's


def _base64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def _each_embedding(value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def tamper(answer: dict[str, Any]) -> dict[str, Any]:
        return {**answer, "data": [{**item, "embedding": value} for item in answer["data"]]}

    return tamper


MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "not-json": (lambda answer: b"<html>gateway says hello</html>", "malformed answer"),
    "not-an-object": (lambda answer: [1, 2, 3], "malformed answer"),
    "no-data": (lambda answer: {key: value for key, value in answer.items() if key != "data"}, "malformed answer"),
    "empty-data": (lambda answer: {**answer, "data": []}, "malformed answer"),
    "embedding-null": (_each_embedding(None), "malformed answer"),
    "embedding-not-base64": (_each_embedding("abc"), "malformed answer"),
    "embedding-base64-of-a-partial-float": (_each_embedding("YWJjZA=="[:4]), "malformed answer"),
    "embedding-strings": (_each_embedding(["0.5"] * DIMENSIONS), "not a list of numbers"),
    "item-not-an-object": (lambda answer: {**answer, "data": ["embedding"]}, "malformed answer"),
    "index-out-of-range": (lambda answer: {**answer, "data": [{**answer["data"][0], "index": 7}]}, "indexes"),
    "two-vectors-for-one-text": (lambda answer: {**answer, "data": answer["data"] * 2}, "2 vectors for 1 texts"),
    "wrong-dimension": (_each_embedding(_base64([0.5] * 10)), "returned 10 dimensions"),
    "all-zero": (_each_embedding(_base64([0.0] * DIMENSIONS)), "all-zero"),
    "nan": (_each_embedding(_base64([math.nan] * DIMENSIONS)), "not finite"),
    "infinity": (_each_embedding(_base64([math.inf] + [0.5] * (DIMENSIONS - 1))), "not finite"),
    "nan-in-a-float-list": (_each_embedding([math.nan] * DIMENSIONS), "not finite"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_embeddings_answer_makes_create_answer_503_and_store_nothing(world, fake_openai, case):
    fake_openai.tamper, cause = MALFORMED[case]

    response = create(world.acme.client, scope="user", user_id="alice", content="Alice prefers dark mode.")

    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "unavailable" and error["details"] == {"layer": "embeddings"}
    assert error["message"].startswith("Embeddings are unavailable") and cause in error["message"]
    assert Memory.objects.count() == 0


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_embeddings_answer_makes_search_by_text_answer_503(world, fake_openai, case):
    fake_openai.tamper, cause = MALFORMED[case]

    response = world.acme.client.post(
        "/api/v1/memories/search", {"query": "dark mode", "user_id": "alice"}, format="json"
    )

    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "unavailable" and cause in response.json()["error"]["message"]


def test_vectors_of_huge_components_from_the_server_are_stored_at_unit_length_and_found(world, fake_openai):
    # 1e300 squared overflows a float: a sum of squares made these vectors all zeros, stored and never found.
    fake_openai.tamper = _each_embedding([1e300] * DIMENSIONS)

    created = create(world.acme.client, scope="user", user_id="alice", content="Alice prefers dark mode.")

    assert created.status_code == 201, created.json()
    stored = Memory.objects.get(pk=created.json()["id"]).embedding
    assert math.isclose(math.hypot(*stored), 1.0, rel_tol=1e-6)
    found = world.acme.client.post(
        "/api/v1/memories/search", {"query": "dark mode", "user_id": "alice", "min_score": 0.99}, format="json"
    ).json()["results"]
    assert [item["memory"]["id"] for item in found] == [created.json()["id"]]
    assert math.isclose(found[0]["score"], 1.0, abs_tol=1e-6)
