"""AgentMemoryStore keeps BaseStore's contract against the service (its Django application in-process over
httpx's WSGI transport, the real Postgres + pgvector and embedder): CRUD, filters, paging, semantic search,
namespaces, batch ordering, TTL, and the tenant boundary."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from agent_memory_client.store import AgentMemoryStore
from langgraph.store.base import GetOp, PutOp, SearchOp

from conftest import World


@pytest.fixture
def store(in_process: dict[str, Any], world: World) -> AgentMemoryStore:
    return AgentMemoryStore(api_key=world.acme.raw_key, index={"fields": ["text"]}, **in_process)


def test_items_are_put_read_updated_and_deleted_by_namespace_and_key(store: AgentMemoryStore) -> None:
    store.put(("users", "alice", "prefs"), "tone", {"text": "formal", "level": 2})
    item = store.get(("users", "alice", "prefs"), "tone")
    assert item is not None
    assert (item.namespace, item.key, item.value) == (
        ("users", "alice", "prefs"),
        "tone",
        {"text": "formal", "level": 2},
    )
    assert store.get(("users", "bob", "prefs"), "tone") is None
    assert store.get(("users", "alice", "prefs"), "missing") is None

    time.sleep(0.01)
    store.put(("users", "alice", "prefs"), "tone", {"text": "casual"})
    updated = store.get(("users", "alice", "prefs"), "tone")
    assert updated is not None and updated.value == {"text": "casual"}
    assert updated.created_at == item.created_at and updated.updated_at > item.updated_at

    store.delete(("users", "alice", "prefs"), "tone")
    assert store.get(("users", "alice", "prefs"), "tone") is None


def test_a_batch_answers_each_operation_in_its_place_and_in_order(store: AgentMemoryStore) -> None:
    results = store.batch(
        [
            PutOp(("docs",), "a", {"text": "first"}),
            GetOp(("docs",), "a"),
            PutOp(("docs",), "a", {"text": "second"}),
            GetOp(("docs",), "a"),
            SearchOp(("docs",), limit=5),
            GetOp(("docs",), "nothing"),
        ]
    )
    assert results[0] is None and results[2] is None and results[5] is None
    assert results[1].value == {"text": "first"}  # type: ignore[union-attr]
    assert results[3].value == {"text": "second"}  # type: ignore[union-attr]
    assert [item.key for item in results[4]] == ["a"]  # type: ignore[union-attr]


def test_search_filters_pages_and_ranks_by_meaning(store: AgentMemoryStore) -> None:
    texts = {
        "dog": "dogs puppies barking walks in the park",
        "cat": "cats kittens purring on the sofa",
        "tax": "quarterly tax returns and invoices",
    }
    for position, (key, text) in enumerate(texts.items()):
        store.put(("kb", "pets" if key != "tax" else "money"), key, {"text": text, "rank": position, "kind": "note"})
    store.put(("kb", "pets"), "unindexed", {"text": "dogs puppies barking", "rank": 9, "kind": "raw"}, index=False)
    store.put(("other",), "dog", {"text": "dogs puppies barking walks", "rank": 0, "kind": "note"})

    everything = store.search(("kb",), limit=10)
    assert {item.key for item in everything} == {"dog", "cat", "tax", "unindexed"}
    assert [item.key for item in store.search(("kb", "pets"), filter={"kind": "note"})] in (
        ["cat", "dog"],
        ["dog", "cat"],
    )
    assert [item.key for item in store.search(("kb",), filter={"rank": {"$gte": 1, "$lt": 9}})] in (
        ["tax", "cat"],
        ["cat", "tax"],
    )
    pages = [store.search(("kb",), limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [len(page) for page in pages] == [2, 2, 0]
    assert {item.key for page in pages for item in page} == {"dog", "cat", "tax", "unindexed"}

    ranked = store.search(("kb",), query="puppies barking dogs", limit=4)
    assert ranked[0].key == "dog"
    scores = [item.score for item in ranked if item.score is not None]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    assert ranked[-1].key == "unindexed" and ranked[-1].score is None  # put with index=False: no vector


def test_namespaces_are_listed_by_prefix_suffix_and_depth_with_paging(store: AgentMemoryStore) -> None:
    for namespace in [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("z", "b", "c")]:
        store.put(namespace, "k", {"text": "v"})
    assert store.list_namespaces() == [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("z", "b", "c")]
    assert store.list_namespaces(prefix=("a", "b")) == [("a", "b", "c"), ("a", "b", "d")]
    assert store.list_namespaces(suffix=("b", "c")) == [("a", "b", "c"), ("z", "b", "c")]
    assert store.list_namespaces(prefix=("*", "b")) == [("a", "b", "c"), ("a", "b", "d"), ("z", "b", "c")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("z",)]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d"), ("a", "x")]


def test_items_expire_after_their_ttl_and_reads_push_the_expiry_back(in_process: dict[str, Any], world: World) -> None:
    store = AgentMemoryStore(api_key=world.acme.raw_key, ttl={"refresh_on_read": True}, **in_process)
    store.put(("session",), "short", {"text": "gone soon"}, ttl=0.02)  # 1.2 s
    store.put(("session",), "kept", {"text": "no ttl"})
    time.sleep(0.7)
    assert store.get(("session",), "short") is not None  # read at 0.7 s: expires 1.2 s from now
    time.sleep(0.7)
    assert store.get(("session",), "short", refresh_ttl=False) is not None
    time.sleep(1.4)
    assert store.get(("session",), "short") is None
    assert [item.key for item in store.search(("session",))] == ["kept"]
    assert store.list_namespaces() == [("session",)]


def test_the_outsider_sees_none_of_acmes_items(
    in_process: dict[str, Any], world: World, store: AgentMemoryStore
) -> None:
    store.put(("users", "alice"), "secret", {"text": "alice's card ends 4242"})
    outsider = AgentMemoryStore(api_key=world.outsider.raw_key, index={"fields": ["text"]}, **in_process)
    assert outsider.get(("users", "alice"), "secret") is None
    assert outsider.search(("users",), query="card") == []
    assert outsider.list_namespaces() == []
    outsider.put(("users", "alice"), "secret", {"text": "the outsider's own"})
    kept = store.get(("users", "alice"), "secret")
    assert kept is not None and kept.value == {"text": "alice's card ends 4242"}


def test_a_batch_that_writes_carries_an_idempotency_key_and_a_batch_of_reads_none(
    in_process: dict[str, Any], world: World
) -> None:
    service = in_process["transport"].app
    keys: list[str | None] = []

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        keys.append(environ.get("HTTP_IDEMPOTENCY_KEY"))
        return service(environ, start_response)

    store = AgentMemoryStore(
        api_key=world.acme.raw_key, base_url=in_process["base_url"], transport=httpx.WSGITransport(app=recording)
    )
    store.put(("docs",), "a", {"text": "first"})
    store.get(("docs",), "a")
    store.search(("docs",))
    store.list_namespaces()
    store.batch([GetOp(("docs",), "a"), PutOp(("docs",), "a", None)])

    assert [key is not None for key in keys] == [True, False, False, False, True]
    assert len(set(keys) - {None}) == 2  # a key per write call
    assert store.get(("docs",), "a") is None
