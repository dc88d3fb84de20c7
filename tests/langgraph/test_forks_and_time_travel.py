"""Time travel with LangGraph: `update_state` on an old checkpoint forks the thread, and the fork's values are
its own — the service stores each channel value once per (channel, version), so the checkpointer must not
number a fork's values as the main line numbered its own. Each case runs against InMemorySaver too."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from agent_memory_client.checkpoint import AgentMemorySaver, next_channel_version
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from conftest import World


class Shout(TypedDict):
    text: str


def _graph(checkpointer: Any) -> Any:
    builder = StateGraph(Shout)
    builder.add_node("shout", lambda state: {"text": state["text"] + "!"})
    builder.add_edge(START, "shout")
    builder.add_edge("shout", END)
    return builder.compile(checkpointer=checkpointer)


def _fork_and_resume(checkpointer: Any, thread_id: str) -> tuple[Any, tuple[str, ...], Any]:
    graph = _graph(checkpointer)
    config = {"configurable": {"thread_id": thread_id}}
    graph.invoke({"text": "a"}, config)
    before_shout = next(snapshot for snapshot in graph.get_state_history(config) if snapshot.next == ("shout",))
    fork = graph.update_state(before_shout.config, {"text": "b"})
    state = graph.get_state(fork)
    return state.values, state.next, graph.invoke(None, fork)


def test_a_fork_from_an_old_checkpoint_reads_its_own_values_not_the_main_lines(
    in_process_threads: dict[str, Any], world: World
) -> None:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process_threads)
    try:
        ours = _fork_and_resume(saver, "lg-fork")
    finally:
        saver.close()

    assert ours == ({"text": "b"}, ("shout",), {"text": "b!"})
    assert ours == _fork_and_resume(InMemorySaver(), "lg-fork")
    # The main line still reads as it was written.
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process_threads)
    try:
        assert _graph(saver).get_state({"configurable": {"thread_id": "lg-fork"}}).values == {"text": "b!"}
        history = [
            snapshot.values for snapshot in _graph(saver).get_state_history({"configurable": {"thread_id": "lg-fork"}})
        ]
    finally:
        saver.close()
    assert {"text": "a!"} in history


@pytest.mark.parametrize(
    ("current", "counter"),
    [(None, 1), ("000000000001.00000000002a", 2), ("000000000041.ffffffffffff", 42)],
)
def test_new_channel_versions_count_up_as_text_with_a_random_tail(current: str | None, counter: int) -> None:
    first, second = next_channel_version(current), next_channel_version(current)

    assert isinstance(first, str) and first.startswith(f"{counter:012d}.")
    assert first != second  # two branches' writes of one step
    assert current is None or first > current


def test_a_thread_that_counts_in_integers_goes_on_in_integers() -> None:
    assert next_channel_version(3) == 4
