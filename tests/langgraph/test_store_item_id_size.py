"""A namespace and key too long, in UTF-8 bytes, for PostgreSQL's index are refused with a 400 naming the limit,
before anything is written; up to the limit they are stored (bytes that do not compress, the worst case)."""

from __future__ import annotations

import random
from typing import Any

from conftest import World
from langgraph_app.models import StoreItem
from langgraph_app.store import MAX_ITEM_ID_BYTES

BATCH = "/api/v1/langgraph/store/batch"


def _emoji(count: int, seed: int) -> str:
    # Four bytes each in UTF-8, at random: PostgreSQL cannot compress them below the index's limit.
    chosen = random.Random(seed)
    return "".join(chr(chosen.randint(0x1F300, 0x1FAFF)) for _ in range(count))


def _put(namespace: list[str], key: str) -> dict[str, Any]:
    return {"ops": [{"op": "put", "namespace": namespace, "key": key, "value": {"a": 1}}]}


def test_a_namespace_and_key_over_the_index_limit_are_a_400_naming_it_and_store_nothing(world: World) -> None:
    client = world.acme.client
    namespace = [_emoji(255, seed) for seed in range(4)]  # 4,083 bytes joined: answered 503 "retry" before
    ahead = {"op": "put", "namespace": ["fine"], "key": "k", "value": {"a": 1}}
    body = _put(namespace, "k")
    body["ops"].insert(0, ahead)

    response = client.post(BATCH, body, format="json")

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["details"] == {"op": 1, "bytes": 4084, "limit": MAX_ITEM_ID_BYTES}
    assert "ops[1]" in error["message"] and str(MAX_ITEM_ID_BYTES) in error["message"]
    assert client.post(BATCH, _put([_emoji(150, 5)], _emoji(512, 9)), format="json").status_code == 400  # 2,648
    assert not StoreItem.objects.exists()


def test_a_namespace_and_key_of_exactly_the_limit_are_stored_and_read_back(world: World) -> None:
    client = world.acme.client
    namespace, key = [_emoji(200, 1), _emoji(200, 2)], "abc" + _emoji(249, 3)  # 1,601 + 999 bytes
    assert len(".".join(namespace).encode()) + len(key.encode()) == MAX_ITEM_ID_BYTES

    assert client.post(BATCH, _put(namespace, key), format="json").status_code == 200
    got = client.post(BATCH, {"ops": [{"op": "get", "namespace": namespace, "key": key}]}, format="json")

    assert got.status_code == 200 and got.json()["results"][0]["value"] == {"a": 1}
