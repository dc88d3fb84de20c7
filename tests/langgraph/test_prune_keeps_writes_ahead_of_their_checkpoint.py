"""LangGraph saves a step's task writes in the background, so they can be stored before their checkpoint is:
`prune(strategy="keep_latest")` and `delete_for_runs` remove only the writes of the checkpoints they delete (as
PostgresSaver's prune does), and such writes are there once their checkpoint lands. Deleting the thread removes
them with the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from conftest import World
from langgraph_app.models import PendingWrite

IDS = [str(uuid6(clock_seq=number)) for number in range(3)]


@pytest.fixture
def saver(in_process_threads: dict[str, Any], world: World) -> Iterator[AgentMemorySaver]:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process_threads)
    yield saver
    saver.close()


def _at(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _writes_ahead_of_their_checkpoint(
    saver: AgentMemorySaver, thread_id: str, remove: Callable[[], None]
) -> list[tuple[str, str, Any]]:
    """Two checkpoints of runs run-0 and run-1, the writes of the third stored before it, `remove()`, then the
    third checkpoint: the pending writes it is read with."""
    config = _at(thread_id)
    for step, checkpoint_id in enumerate(IDS[:2]):
        checkpoint = empty_checkpoint()
        checkpoint["id"] = checkpoint_id
        config = saver.put(config, checkpoint, {"source": "loop", "step": step, "run_id": f"run-{step}"}, {})
    saver.put_writes(_at(thread_id, IDS[2]), [("messages", "written before its checkpoint")], "task-1")
    remove()
    checkpoint = empty_checkpoint()
    checkpoint["id"] = IDS[2]
    saver.put(config, checkpoint, {"source": "loop", "step": 2, "run_id": "run-2"}, {})
    found = saver.get_tuple(_at(thread_id, IDS[2]))
    assert found is not None
    return list(found.pending_writes or [])


def test_keep_latest_keeps_the_writes_stored_before_their_checkpoint(saver: AgentMemorySaver) -> None:
    writes = _writes_ahead_of_their_checkpoint(saver, "lg-ahead", lambda: saver.prune(["lg-ahead"]))

    assert writes == [("task-1", "messages", "written before its checkpoint")]


def test_keep_latest_still_removes_the_writes_of_the_checkpoints_it_deletes(saver: AgentMemorySaver) -> None:
    config = _at("lg-pruned-writes")
    for step, checkpoint_id in enumerate(IDS[:2]):
        checkpoint = empty_checkpoint()
        checkpoint["id"] = checkpoint_id
        config = saver.put(config, checkpoint, {"source": "loop", "step": step}, {})
        saver.put_writes(config, [("messages", f"step {step}")], "task-1")

    saver.prune(["lg-pruned-writes"])

    assert list(PendingWrite.objects.values_list("checkpoint_id", flat=True)) == [IDS[1]]


def test_delete_for_runs_keeps_the_writes_stored_before_their_checkpoint(saver: AgentMemorySaver) -> None:
    writes = _writes_ahead_of_their_checkpoint(saver, "lg-run-ahead", lambda: saver.delete_for_runs(["run-0"]))

    assert writes == [("task-1", "messages", "written before its checkpoint")]
    assert [config["configurable"]["checkpoint_id"] for config, *_ in saver.list(_at("lg-run-ahead"))] == IDS[:0:-1]


def test_deleting_the_thread_removes_the_writes_stored_before_their_checkpoint_too(saver: AgentMemorySaver) -> None:
    saver.put_writes(_at("lg-gone", IDS[2]), [("messages", "written before its checkpoint")], "task-1")

    saver.delete_thread("lg-gone")

    assert not PendingWrite.objects.exists()
