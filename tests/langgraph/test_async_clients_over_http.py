"""The async store and the sync checkpointer methods (the conformance suite drives the async ones) against a
real server; a checkpointer given httpx transports for its sync and async clients, and the async client's
sessions."""

from __future__ import annotations

from typing import Any

import httpx
from agent_memory_client.checkpoint import AgentMemorySaver
from agent_memory_client.client import AsyncMemoryClient
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


def test_a_checkpointer_given_httpx_transports_saves_and_reads_in_sync_and_async_calls(
    service: ServerProcess, world: World
) -> None:
    saver = AgentMemorySaver(
        base_url=service.url,
        api_key=world.acme.raw_key,
        transport=httpx.HTTPTransport(),
        async_transport=httpx.AsyncHTTPTransport(),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "lg-transport", "checkpoint_ns": ""}}

    saver.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
    found = run_async(lambda: saver.aget_tuple(config))
    run_async(lambda: saver.aput(config, empty_checkpoint(), {"source": "loop", "step": 0}, {}))

    assert found is not None and saver.get_tuple(config) is not None
    assert len(list(saver.list(config))) == 2
    saver.close()


def test_the_async_client_creates_and_reads_sessions(service: ServerProcess, world: World) -> None:
    async def create_and_read() -> tuple[dict[str, Any], dict[str, Any]]:
        client = AsyncMemoryClient(service.url, world.acme.raw_key)
        try:
            created = await client.create_session(user_id="alice", session_id="s-async", metadata={"a": 1})
            return created, await client.get_session("s-async")
        finally:
            await client.aclose()

    created, read = run_async(create_and_read)

    assert created["id"] == read["id"] == "s-async"
    assert read["user_id"] == "alice" and read["metadata"] == {"a": 1}
