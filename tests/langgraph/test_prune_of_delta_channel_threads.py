"""`prune(strategy="keep_latest")` refuses threads that use a LangGraph `DeltaChannel`, as PostgresSaver does:
their state is rebuilt from older checkpoints and writes that keep_latest would remove. The whole request
changes nothing when one thread is refused; `delete` still removes such threads."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.graph import END, START, StateGraph

from conftest import World
from langgraph_app.models import ThreadCheckpoint
from tests.langgraph.conftest import run_async
from tests.servers import ServerProcess


def _extend(state: list[str] | None, writes: list[list[str]]) -> list[str]:
    return [*(state or []), *(item for write in writes for item in write)]


class Log(TypedDict, total=False):
    log: Annotated[list[str], DeltaChannel(_extend)]


class Plain(TypedDict):
    n: int


def _delta_graph(checkpointer: Any) -> Any:
    graph = StateGraph(Log)
    graph.add_node("one", lambda state: {"log": ["one"]})
    graph.add_node("two", lambda state: {"log": ["two"]})
    graph.add_edge(START, "one")
    graph.add_edge("one", "two")
    graph.add_edge("two", END)
    return graph.compile(checkpointer=checkpointer)


def _plain_graph(checkpointer: Any) -> Any:
    graph = StateGraph(Plain)
    graph.add_node("add", lambda state: {"n": state["n"] + 1})
    graph.add_edge(START, "add")
    graph.add_edge("add", END)
    return graph.compile(checkpointer=checkpointer)


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _checkpoints(thread_id: str) -> int:
    return ThreadCheckpoint.objects.filter(session__session_id=thread_id).count()


def test_keep_latest_refuses_a_delta_channel_thread_and_prunes_no_thread_of_the_request(
    in_process_threads: dict[str, Any], world: World
) -> None:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process_threads)
    delta, plain = _delta_graph(saver), _plain_graph(saver)
    try:
        for run in range(3):
            delta.invoke({"log": [f"in{run}"]}, _config("lg-delta"))
            plain.invoke({"n": run}, _config("lg-plain"))
        values = delta.get_state(_config("lg-delta")).values
        counts = {thread: _checkpoints(thread) for thread in ("lg-delta", "lg-plain")}

        with pytest.raises(NotImplementedError, match=r"DeltaChannel: lg-delta$"):
            saver.prune(["lg-plain", "lg-delta"], strategy="keep_latest")

        assert {thread: _checkpoints(thread) for thread in counts} == counts
        assert delta.get_state(_config("lg-delta")).values == values
        assert values["log"][-3:] == ["in2", "one", "two"]
    finally:
        saver.close()


def test_the_refusal_is_a_422_naming_the_delta_channel_threads(
    in_process_threads: dict[str, Any], world: World
) -> None:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process_threads)
    try:
        _delta_graph(saver).invoke({"log": ["in"]}, _config("lg-delta"))
    finally:
        saver.close()

    answer = world.acme.client.post(
        "/api/v1/langgraph/prune",
        {"thread_ids": ["lg-delta", "lg-unknown"], "strategy": "keep_latest"},
        format="json",
    )

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "unprocessable"
    assert error["details"] == {"delta_channel_threads": ["lg-delta"]}
    assert error["message"] == "keep_latest can't prune threads that use a DeltaChannel: lg-delta"


def test_keep_latest_refuses_a_thread_whose_only_delta_trace_is_a_snapshot_blob(
    in_process_threads: dict[str, Any], world: World
) -> None:
    # A channel that snapshots at every update leaves no counters in metadata: the snapshot blob tells.
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process_threads)
    try:
        config = _config("lg-snapshot")
        for step in range(2):
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"log": _DeltaSnapshot(["a"] * (step + 1) * 200)}
            checkpoint["channel_versions"] = {"log": saver.get_next_version(None)}
            config = saver.put(config, checkpoint, {"source": "loop", "step": step}, checkpoint["channel_versions"])

        with pytest.raises(NotImplementedError, match="lg-snapshot"):
            saver.prune(["lg-snapshot"], strategy="keep_latest")
        assert _checkpoints("lg-snapshot") == 2

        saver.prune(["lg-snapshot"], strategy="delete")
        assert _checkpoints("lg-snapshot") == 0
    finally:
        saver.close()


def test_aprune_refuses_a_delta_channel_thread_too(service: ServerProcess, saver: AgentMemorySaver) -> None:
    _delta_graph(saver).invoke({"log": ["in"]}, _config("lg-delta"))

    async def prune() -> None:
        try:
            await saver.aprune(["lg-delta"])
        finally:
            await saver.async_client.aclose()

    with pytest.raises(NotImplementedError, match="lg-delta"):
        run_async(prune)
    assert _checkpoints("lg-delta") == 4
