"""The LangGraph checkpoint diff page's counts and tree: capped counts say so, and an unchanged NaN is the same."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from conftest import World, logged_in
from langgraph_app.models import ThreadCheckpoint
from memory_admin.dashboard.difftree import diff_tree
from sessions_app.models import AgentSession

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def saver(in_process_threads: dict[str, Any], world: World) -> Iterator[AgentMemorySaver]:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, user_id="u-alice", **in_process_threads)
    yield saver
    saver.close()


class Scored(TypedDict):
    score: float
    items: Annotated[list[Any], operator.add]


def _run(saver: AgentMemorySaver, world: World, thread_id: str, first: list[Any], second: list[Any]) -> Any:
    """A two-step graph (`score` never changes); the diff page of its last checkpoint with its parent."""
    builder = StateGraph(Scored)
    builder.add_node("a", lambda state: {"items": first})
    builder.add_node("b", lambda state: {"items": second})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph: Any = builder.compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    graph.invoke({"score": math.nan, "items": []}, config)
    session = AgentSession.objects.get(session_id=thread_id)
    last = ThreadCheckpoint.objects.filter(session=session).order_by("checkpoint_id").last()
    assert last is not None
    return logged_in(world.support).get(
        f"/sessions/{session.pk}/checkpoints/diff/",
        {"kind": "langgraph", "from": last.parent_checkpoint_id, "to": last.checkpoint_id},
    )


def test_counts_capped_by_the_summary_say_there_are_more_changes(saver: AgentMemorySaver, world: World) -> None:
    response = _run(saver, world, "lg-many", ["x"], list(range(1500)))

    page = response.content.decode()
    assert response.status_code == 200
    assert "+ 1000 added" in page
    assert "more changes than listed" in page.split('id="diff-counts"')[1].split("</p>")[0]


def test_a_small_diff_says_nothing_of_more_changes(saver: AgentMemorySaver, world: World) -> None:
    response = _run(saver, world, "lg-few", ["x"], ["y"])

    assert response.status_code == 200
    assert "more changes than listed" not in response.content.decode()


def test_an_unchanged_nan_channel_value_is_the_same_in_the_tree_and_the_counts(
    saver: AgentMemorySaver, world: World
) -> None:
    response = _run(saver, world, "lg-nan", ["a"], ["b"])

    page = response.content.decode()
    statuses = {row.path: row.status for row in response.context["tree"].rows}
    assert statuses["/channel_values/score"] == "same"
    assert "/channel_values/score" not in response.context["summary"].changed
    assert '<td class="before">NaN</td>' in page


def test_the_diff_tree_takes_nan_for_nan_at_any_depth_and_a_change_from_nan_for_a_change() -> None:
    nan = float("nan")
    source = {"score": nan, "nested": {"values": [1, nan]}, "moved": nan}
    target = {"score": float("nan"), "nested": {"values": [1, float("nan")]}, "moved": 1.5}

    rows = {row.path: row for row in diff_tree(source, target).rows}

    assert rows["/score"].status == "same" and rows["/score"].after == "NaN"
    assert rows["/nested"].status == "same"
    assert rows["/moved"].status == "changed" and (rows["/moved"].before, rows["/moved"].after) == ("NaN", "1.5")


class Configured(TypedDict):
    cfg: dict[str, Any]


def test_a_channel_value_whose_numbers_changed_type_or_sign_is_changed_in_the_tree_as_in_the_counts(
    saver: AgentMemorySaver, world: World
) -> None:
    builder = StateGraph(Configured)
    builder.add_node("a", lambda state: {"cfg": {"flag": 1, "ratio": 1, "z": 0.0, "same": 2}})
    builder.add_node("b", lambda state: {"cfg": {"flag": True, "ratio": 1.0, "z": -0.0, "same": 2}})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph: Any = builder.compile(checkpointer=saver)
    graph.invoke({"cfg": {}}, {"configurable": {"thread_id": "lg-types"}})
    session = AgentSession.objects.get(session_id="lg-types")
    last = ThreadCheckpoint.objects.filter(session=session).order_by("checkpoint_id").last()
    assert last is not None

    response = logged_in(world.support).get(
        f"/sessions/{session.pk}/checkpoints/diff/",
        {"kind": "langgraph", "from": last.parent_checkpoint_id, "to": last.checkpoint_id},
    )

    statuses = {row.path: row.status for row in response.context["tree"].rows}
    changed = ["/channel_values/cfg/flag", "/channel_values/cfg/ratio", "/channel_values/cfg/z"]
    assert statuses["/channel_values/cfg"] == "inside"
    assert [path for path in changed if statuses[path] == "changed"] == changed
    assert statuses["/channel_values/cfg/same"] == "same"
    assert [path for path in response.context["summary"].changed if path.startswith("/channel_values/")] == changed
