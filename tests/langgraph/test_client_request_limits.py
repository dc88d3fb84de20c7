"""Against the real service, the clients keep within what one request may carry: a step's large task writes
saved together go in several requests under the body limit, more ids or store operations than one request
takes go in chunks, and a thread id goes in the path as one segment (or is refused before sending)."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Any, TypedDict

import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from agent_memory_client.store import AgentMemoryStore
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import GetOp, Item, PutOp
from langgraph.types import Send

from conftest import World
from tests.langgraph.conftest import run_async
from tests.servers import ServerProcess

LARGE = "x" * 300_000  # a task's output: ~400 KB once serialised and in base64, well under the 1 MiB limit


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def test_large_task_writes_saved_at_once_are_stored_in_requests_under_the_body_limit(
    saver: AgentMemorySaver,
) -> None:
    stored = saver.put(_config("lg-large"), empty_checkpoint(), {"source": "loop", "step": 0}, {})
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def task(number: int) -> None:
        barrier.wait()
        try:
            saver.put_writes(stored, [("docs", LARGE)], f"task-{number}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=task, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    async def parallel_async_writes() -> None:
        await asyncio.gather(*(saver.aput_writes(stored, [("docs", LARGE)], f"atask-{n}") for n in range(6)))

    run_async(parallel_async_writes)

    assert errors == []
    found = saver.get_tuple(_config("lg-large"))
    assert found is not None
    assert sorted(task for task, _, _ in found.pending_writes or []) == sorted(
        [f"task-{n}" for n in range(6)] + [f"atask-{n}" for n in range(6)]
    )
    assert all(value == LARGE for _, _, value in found.pending_writes or [])


def _sizes(old: list[Any], new: list[Any]) -> list[int]:
    return [item if isinstance(item, int) else len(item) for item in old + new]


class _Docs(TypedDict):
    docs: Annotated[list[Any], _sizes]  # each task writes a large document; the state keeps its size


def test_a_fan_out_graph_whose_tasks_write_large_outputs_runs_to_the_end(saver: AgentMemorySaver) -> None:
    builder = StateGraph(_Docs)
    builder.add_node("fetch", lambda state: {"docs": [LARGE]})
    builder.add_conditional_edges(START, lambda state: [Send("fetch", {"docs": []}) for _ in range(4)], ["fetch"])
    builder.add_edge("fetch", END)
    graph: Any = builder.compile(checkpointer=saver)

    out = graph.invoke({"docs": []}, _config("lg-fan-out"))
    out_async = run_async(lambda: graph.ainvoke({"docs": []}, _config("lg-fan-out-async")))

    assert out["docs"] == out_async["docs"] == [len(LARGE)] * 4


def test_more_ids_than_one_request_takes_are_sent_in_chunks(saver: AgentMemorySaver) -> None:
    for thread_id, run_id in (("lg-run-early", "run-5"), ("lg-run-late", "run-1500")):
        saver.put(_config(thread_id), empty_checkpoint(), {"source": "loop", "step": 0, "run_id": run_id}, {})
    for step in range(2):
        saver.put(_config("lg-pruned"), empty_checkpoint(), {"source": "loop", "step": step}, {})

    saver.delete_for_runs([f"run-{number}" for number in range(2001)])
    saver.prune([f"lg-unknown-{number}" for number in range(1200)] + ["lg-pruned"])

    assert saver.get_tuple(_config("lg-run-early")) is None and saver.get_tuple(_config("lg-run-late")) is None
    assert len(list(saver.list(_config("lg-pruned")))) == 1


def test_more_store_operations_than_one_request_takes_are_sent_in_chunks_in_order(
    service: ServerProcess, world: World
) -> None:
    store = AgentMemoryStore(base_url=service.url, api_key=world.acme.raw_key)

    store.batch([PutOp(("many",), f"k{number}", {"n": number}) for number in range(501)])
    got = store.batch([GetOp(("many",), f"k{number}") for number in range(501)])

    async def get_async() -> list[Any]:
        try:
            return await store.abatch([GetOp(("many",), f"k{number}") for number in reversed(range(501))])
        finally:
            await store.async_client.aclose()

    got_async = run_async(get_async)
    assert [item.value["n"] for item in got if isinstance(item, Item)] == list(range(501))
    assert [item.value["n"] for item in got_async if isinstance(item, Item)] == list(reversed(range(501)))
    store.client.close()


def test_a_thread_id_with_a_colon_goes_through_and_one_the_service_cannot_hold_is_refused(
    saver: AgentMemorySaver,
) -> None:
    saver.put(_config("team:alpha.v1_x-2"), empty_checkpoint(), {"source": "loop", "step": 0}, {})

    assert saver.get_tuple(_config("team:alpha.v1_x-2")) is not None
    assert run_async(lambda: saver.aget_tuple(_config("team:alpha.v1_x-2"))) is not None
    for thread_id in ("a/b", "a?b", "日本"):
        config = _config(thread_id)
        with pytest.raises(ValueError, match="not a valid thread or session id"):
            saver.get_tuple(config)
        with pytest.raises(ValueError, match="not a valid thread or session id"):
            run_async(lambda: saver.aget_tuple(config))  # noqa: B023 (run before the loop goes on)
