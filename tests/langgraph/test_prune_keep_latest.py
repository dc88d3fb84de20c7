"""`prune(strategy="keep_latest")` keeps what LangGraph's PostgresSaver keeps: each namespace's newest
checkpoint, without a parent link to a checkpoint that went, and no namespace of a finished subgraph call."""

from __future__ import annotations

from typing import Any, TypedDict

from agent_memory_client.checkpoint import AgentMemorySaver
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from conftest import World
from langgraph_app.models import ThreadCheckpoint
from sessions_app.models import AgentSession


class Count(TypedDict):
    n: int


def _graph(checkpointer: Any) -> Any:
    inner = StateGraph(Count)
    inner.add_node("add", lambda state: {"n": state["n"] + 10})
    inner.add_edge(START, "add")
    inner.add_edge("add", END)
    outer = StateGraph(Count)
    outer.add_node("first", lambda state: {"n": state["n"] + 1})
    outer.add_node("call", inner.compile())  # a subgraph call: its namespace is "call:<task id>"
    outer.add_edge(START, "first")
    outer.add_edge("first", "call")
    outer.add_edge("call", END)
    return outer.compile(checkpointer=checkpointer)


def _namespaces(thread_id: str) -> list[str]:
    session = AgentSession.objects.get(session_id=thread_id)
    return sorted(ThreadCheckpoint.objects.filter(session=session).values_list("checkpoint_ns", flat=True))


def test_keep_latest_leaves_the_newest_root_checkpoint_without_a_parent_and_no_subgraph_call(
    in_process_threads: dict[str, Any], world: World
) -> None:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process_threads)
    config: RunnableConfig = {"configurable": {"thread_id": "lg-prune"}}
    graph = _graph(saver)
    try:
        graph.invoke({"n": 0}, config, subgraphs=True)
        before = _namespaces("lg-prune")
        assert any(":" in namespace for namespace in before), before  # the call saved checkpoints of its own

        saver.prune(["lg-prune"], strategy="keep_latest")

        assert _namespaces("lg-prune") == [""]
        latest = saver.get_tuple(config)
        assert latest is not None and latest.parent_config is None
        assert latest.checkpoint["channel_values"]["n"] == 11
        # The thread goes on from what was kept.
        assert graph.invoke({"n": 100}, config)["n"] == 111
    finally:
        saver.close()
