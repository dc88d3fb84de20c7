"""Support staff read a LangGraph thread's checkpoints on the dashboard: listed with step and source, and any
checkpoint diffed with its parent, with LangGraph's msgpack-encoded messages decoded into readable fields."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from agent_memory_client.checkpoint import AgentMemorySaver
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages

from conftest import World, logged_in
from langgraph_app.models import ThreadCheckpoint
from sessions_app.models import AgentSession


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _answer(state: ChatState) -> dict[str, Any]:
    return {"messages": [AIMessage(content="Your refund of 12.99 EUR is on its way.")]}


def _run_graph(in_process_threads: dict[str, Any], world: World) -> None:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, user_id="u-alice", **in_process_threads)
    builder = StateGraph(ChatState)
    builder.add_node("answer", _answer)
    builder.add_edge(START, "answer")
    graph: Any = builder.compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": "lg-chat"}}
    graph.invoke(ChatState(messages=[HumanMessage(content="Where is my refund?")]), config)


def test_support_sees_a_threads_checkpoints_and_a_readable_diff_of_its_messages(
    in_process_threads: dict[str, Any], world: World
) -> None:
    _run_graph(in_process_threads, world)
    session = AgentSession.objects.get(tenant=world.acme.tenant, session_id="lg-chat")
    assert session.user_id == "u-alice"
    rows = list(ThreadCheckpoint.objects.filter(session=session).order_by("checkpoint_id"))
    assert [row.metadata["step"] for row in rows] == [-1, 0, 1]

    page = logged_in(world.support).get(f"/sessions/{session.pk}/checkpoints/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="langgraph-checkpoints"' in html
    assert all(row.checkpoint_id in html for row in rows)

    last = rows[-1]
    diff = logged_in(world.support).get(
        f"/sessions/{session.pk}/checkpoints/diff/",
        {"kind": "langgraph", "from": last.parent_checkpoint_id, "to": last.checkpoint_id},
    )
    assert diff.status_code == 200
    text = diff.content.decode()
    assert "Your refund of 12.99 EUR is on its way." in text  # the new message, decoded from msgpack
    assert "langchain_core.messages.ai.AIMessage" in text
    assert "Where is my refund?" in text


def test_the_diff_of_checkpoints_the_thread_does_not_have_is_a_404(
    in_process_threads: dict[str, Any], world: World
) -> None:
    _run_graph(in_process_threads, world)
    session = AgentSession.objects.get(tenant=world.acme.tenant, session_id="lg-chat")
    response = logged_in(world.support).get(
        f"/sessions/{session.pk}/checkpoints/diff/", {"kind": "langgraph", "from": "nope", "to": "nothing"}
    )
    assert response.status_code == 404
    for odd in ({"from": "a\x00", "to": "b"}, {"from": "a", "to": "b", "ns": "\x00"}):
        answer = logged_in(world.support).get(f"/sessions/{session.pk}/checkpoints/diff/", {"kind": "langgraph", **odd})
        assert answer.status_code == 404, odd  # was a 500: PostgreSQL text cannot hold NUL
    assert logged_in(world.nobody).get(f"/sessions/{session.pk}/checkpoints/").status_code == 403


class Board(TypedDict):
    grid: dict[tuple[int, int], str]


def test_a_state_with_tuple_keys_diffs_readably_on_the_dashboard(
    in_process_threads: dict[str, Any], world: World
) -> None:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, user_id="u-alice", **in_process_threads)
    builder = StateGraph(Board)
    builder.add_node("move", lambda state: {"grid": {**state["grid"], (1, 1): "x-MARK"}})
    builder.add_edge(START, "move")
    graph: Any = builder.compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": "lg-grid"}}
    graph.invoke(Board(grid={(0, 0): "o-MARK"}), config)
    assert graph.get_state(config).values == {"grid": {(0, 0): "o-MARK", (1, 1): "x-MARK"}}
    session = AgentSession.objects.get(tenant=world.acme.tenant, session_id="lg-grid")
    last = ThreadCheckpoint.objects.filter(session=session).order_by("checkpoint_id").last()
    assert last is not None

    diff = logged_in(world.support).get(
        f"/sessions/{session.pk}/checkpoints/diff/",
        {"kind": "langgraph", "from": last.parent_checkpoint_id, "to": last.checkpoint_id},
    )

    assert diff.status_code == 200  # was a 500: msgpack cannot make a dict key of a list
    text = diff.content.decode()
    assert "x-MARK" in text and "o-MARK" in text
    assert "(1, 1)" in text
