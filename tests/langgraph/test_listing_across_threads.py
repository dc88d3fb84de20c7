"""`AgentMemorySaver.list(None, ...)` and `alist(None, ...)`: LangGraph's listing across every thread, here
every thread of the API key's tenant, newest checkpoint first, honouring filter, before and limit, page after
page; another tenant's checkpoints never show."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from agent_memory_client import checkpoint as checkpoint_module
from agent_memory_client.checkpoint import AgentMemorySaver
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint

from conftest import World
from tests.langgraph.conftest import run_async
from tests.servers import ServerProcess


def _save(
    saver: AgentMemorySaver,
    thread_id: str,
    step: int,
    *,
    source: Literal["input", "loop"] = "loop",
    namespace: str = "",
    checkpoint_id: str | None = None,
) -> str:
    checkpoint = empty_checkpoint()
    if checkpoint_id is not None:
        checkpoint["id"] = checkpoint_id
    checkpoint["channel_values"] = {"step": step}
    checkpoint["channel_versions"] = {"step": step + 1}
    config: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": namespace}}
    saver.put(config, checkpoint, {"source": source, "step": step}, {"step": step + 1})
    return checkpoint["id"]


def _ids(tuples: Iterator[Any]) -> list[tuple[str, str]]:
    return [(t.config["configurable"]["thread_id"], t.config["configurable"]["checkpoint_id"]) for t in tuples]


@pytest.fixture
def saver(in_process: dict[str, Any], world: World) -> Iterator[AgentMemorySaver]:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process)
    yield saver
    saver.close()


@pytest.fixture
def outsider_saver(in_process: dict[str, Any], world: World) -> Iterator[AgentMemorySaver]:
    saver = AgentMemorySaver(api_key=world.outsider.raw_key, **in_process)
    yield saver
    saver.close()


def test_listing_without_a_config_returns_every_thread_of_the_tenant_newest_first(
    saver: AgentMemorySaver, outsider_saver: AgentMemorySaver
) -> None:
    first = _save(saver, "lg-a", 0)
    second = _save(saver, "lg-b", 0)
    third = _save(saver, "lg-a", 1)
    _save(outsider_saver, "lg-a", 0)
    _save(outsider_saver, "lg-secret", 0)

    listed = list(saver.list(None))

    assert _ids(iter(listed)) == [("lg-a", third), ("lg-b", second), ("lg-a", first)]
    assert listed[0].checkpoint["channel_values"] == {"step": 1}
    assert listed[0].metadata["step"] == 1


def test_listing_without_a_config_honours_filter_before_and_limit(saver: AgentMemorySaver) -> None:
    ids = [_save(saver, f"lg-{index % 3}", index, source="input" if index % 2 else "loop") for index in range(7)]

    assert [cid for _, cid in _ids(saver.list(None, filter={"source": "input"}))] == [ids[5], ids[3], ids[1]]
    before: RunnableConfig = {"configurable": {"thread_id": "lg-1", "checkpoint_id": ids[4]}}
    assert [cid for _, cid in _ids(saver.list(None, before=before))] == [ids[3], ids[2], ids[1], ids[0]]
    assert [cid for _, cid in _ids(saver.list(None, before=before, limit=2))] == [ids[3], ids[2]]
    assert [cid for _, cid in _ids(saver.list(None, filter={"step": 6}))] == [ids[6]]
    assert list(saver.list(None, filter={"source": "nothing-like-this"})) == []


def test_listing_without_a_config_pages_through_threads_that_share_checkpoint_ids(
    saver: AgentMemorySaver, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [_save(saver, "lg-source", step) for step in range(3)]
    saver.copy_thread("lg-source", "lg-copy-1")
    saver.copy_thread("lg-source", "lg-copy-2")
    monkeypatch.setattr(checkpoint_module, "PAGE", 2)  # pages end between threads holding the same id

    listed = _ids(saver.list(None))

    threads = ["lg-copy-1", "lg-copy-2", "lg-source"]
    assert listed == [(thread, cid) for cid in reversed(ids) for thread in threads]
    assert _ids(saver.list(None, limit=4)) == listed[:4]


def test_one_threads_listing_pages_through_namespaces_that_share_a_checkpoint_id(
    saver: AgentMemorySaver, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [_save(saver, "lg-nested", step) for step in range(2)]
    for namespace in ("child:a", "child:b"):  # a subgraph's checkpoints, here with the ids of the parent's
        for step, checkpoint_id in enumerate(ids):
            _save(saver, "lg-nested", step, namespace=namespace, checkpoint_id=checkpoint_id)
    monkeypatch.setattr(checkpoint_module, "PAGE", 2)  # a page ends between namespaces of one id

    def listed(**options: Any) -> list[tuple[str, str]]:
        tuples = saver.list({"configurable": {"thread_id": "lg-nested"}}, **options)
        return [(t.config["configurable"]["checkpoint_ns"], t.config["configurable"]["checkpoint_id"]) for t in tuples]

    namespaces = ["", "child:a", "child:b"]
    assert listed() == [(namespace, cid) for cid in reversed(ids) for namespace in namespaces]
    assert listed(limit=5) == listed()[:5]
    before: RunnableConfig = {"configurable": {"thread_id": "lg-nested", "checkpoint_id": ids[1]}}
    assert listed(before=before) == [(namespace, ids[0]) for namespace in namespaces]


def test_the_outsider_lists_none_of_acmes_checkpoints(
    saver: AgentMemorySaver, outsider_saver: AgentMemorySaver
) -> None:
    _save(saver, "lg-private", 0)
    _save(saver, "lg-private", 1)

    assert list(outsider_saver.list(None)) == []
    assert list(outsider_saver.list(None, filter={"source": "loop"})) == []
    mine = _save(outsider_saver, "lg-private", 0)
    assert _ids(outsider_saver.list(None)) == [("lg-private", mine)]


def test_async_listing_without_a_config_spans_the_tenants_threads_over_http(
    service: ServerProcess, world: World
) -> None:
    saver = AgentMemorySaver(base_url=service.url, api_key=world.acme.raw_key)
    outsider = AgentMemorySaver(base_url=service.url, api_key=world.outsider.raw_key)
    ids = [_save(saver, f"lg-async-{index % 2}", index) for index in range(3)]
    _save(outsider, "lg-async-0", 0)

    async def listing() -> tuple[list[Any], list[Any]]:
        everything = [item async for item in saver.alist(None)]
        filtered = [item async for item in saver.alist(None, filter={"step": 1}, limit=5)]
        await saver.async_client.aclose()
        return everything, filtered

    everything, filtered = run_async(listing)
    assert [t.config["configurable"]["checkpoint_id"] for t in everything] == list(reversed(ids))
    assert [t.config["configurable"]["thread_id"] for t in filtered] == ["lg-async-1"]
    saver.close()
    outsider.close()
