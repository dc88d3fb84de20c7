"""The async store and the sync checkpointer methods (the conformance suite drives the async ones) against a
real server."""

from __future__ import annotations

from typing import Any

from agent_memory_client.checkpoint import AgentMemorySaver
from agent_memory_client.store import AgentMemoryStore
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.store.base import GetOp, PutOp, SearchOp

from conftest import World
from tests.langgraph.conftest import run_async
from tests.servers import ServerProcess


def test_the_async_store_and_the_sync_checkpointer_work_over_http(
    service: ServerProcess, world: World, saver: AgentMemorySaver
) -> None:
    store = AgentMemoryStore(base_url=service.url, api_key=world.acme.raw_key, index={"fields": ["text"]})

    async def batch() -> list[Any]:
        first = await store.abatch(
            [PutOp(("docs",), "a", {"text": "refund policy"}), GetOp(("docs",), "a"), GetOp(("docs",), "none")]
        )
        second = await store.abatch([SearchOp(("docs",), query="refund", limit=3)])
        await store.async_client.aclose()
        return [*first, *second]

    put, got, missing, found = run_async(batch)
    assert put is None and missing is None
    assert got.value == {"text": "refund policy"}
    assert [item.key for item in found] == ["a"] and found[0].score is not None

    config: RunnableConfig = {"configurable": {"thread_id": "lg-sync", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"topic": "refunds", "items": [1, 2]}
    checkpoint["channel_versions"] = {"topic": 1, "items": 1}
    stored = saver.put(config, checkpoint, {"source": "input", "step": -1}, {"topic": 1, "items": 1})
    saver.put_writes(stored, [("items", [3]), ("__interrupt__", {"ask": "ok?"})], "task-1", "a:b")
    saver.put_writes(stored, [("__interrupt__", {"ask": "again?"})], "task-1")  # special channels: upsert
    saver.put_writes(stored, [("items", [4])], "task-1")  # regular: insert-if-absent, the first is kept
    found_tuple = saver.get_tuple(config)
    assert found_tuple is not None
    assert found_tuple.checkpoint["channel_values"] == {"topic": "refunds", "items": [1, 2]}
    assert sorted(found_tuple.pending_writes or []) == [
        ("task-1", "__interrupt__", {"ask": "again?"}),
        ("task-1", "items", [3]),
    ]
    assert [t.checkpoint["id"] for t in saver.list(config, filter={"source": "input"})] == [checkpoint["id"]]
    assert list(saver.list(config, filter={"source": "loop"})) == []
    saver.copy_thread("lg-sync", "lg-sync-copy")
    saver.delete_thread("lg-sync")
    assert saver.get_tuple(config) is None
    copied = saver.get_tuple({"configurable": {"thread_id": "lg-sync-copy", "checkpoint_ns": ""}})
    assert copied is not None and copied.checkpoint["channel_values"]["topic"] == "refunds"
    saver.delete_thread("lg-never-existed")  # nothing to delete is not an error
