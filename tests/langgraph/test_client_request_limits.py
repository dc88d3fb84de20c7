"""Against the real service, the clients keep within what one request may carry: a step's large task writes
saved together go in several requests under the body limit (checkpoints counted whole, metadata and all), a
save the service cannot take alone is its 413, more ids or store operations than one request takes go in
chunks, and a thread id goes in the path as one segment (or is refused before sending)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated, Any, TypedDict

import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from agent_memory_client.client import encode_body
from agent_memory_client.errors import ApiError
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


SERVICE_LIMIT = 1024 * 1024  # API_MAX_BODY_BYTES's default


def test_saves_gathered_behind_a_request_go_in_bodies_the_service_takes_counting_checkpoint_metadata(
    saver: AgentMemorySaver,
) -> None:
    stored = saver.put(_config("lg-metadata"), empty_checkpoint(), {"source": "input", "step": -1}, {})
    send = saver.client.save_batch
    bodies: list[int] = []
    started, release = threading.Event(), threading.Event()

    def holding_the_first(thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        bodies.append(len(encode_body(body)))
        if len(bodies) == 1:
            started.set()
            release.wait(10)
        return send(thread_id, body)

    saver.client.save_batch = holding_the_first  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def save(call: Any, *args: Any) -> None:
        try:
            call(*args)
        except BaseException as exc:
            errors.append(exc)

    # Behind a checkpoint in flight: a task's writes, and checkpoints whose metadata holds ~300 KB each (LangGraph
    # copies what `configurable` holds into it) and whose blobs next to nothing. Together they are over the
    # service's limit, each far under it.
    saves = [
        (saver.put, stored, empty_checkpoint(), {"source": "loop", "step": 0}, {}),
        (saver.put_writes, stored, [("docs", "w" * 100_000)], "task-1"),
    ] + [
        (saver.put, stored, empty_checkpoint(), {"source": "loop", "step": step, "context": "z" * 300_000}, {})
        for step in range(1, 5)
    ]
    threads = [threading.Thread(target=save, args=call) for call in saves]
    threads[0].start()
    assert started.wait(10)
    for number, thread in enumerate(threads[1:], start=1):
        thread.start()
        deadline = time.monotonic() + 5
        while len(saver._saves._queues.get("lg-metadata", [])) < number and time.monotonic() < deadline:
            time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(bodies) > 2 and max(bodies) < SERVICE_LIMIT
    assert len(list(saver.list(_config("lg-metadata")))) == 6


def test_a_graph_whose_configurable_holds_a_large_text_runs_to_the_end(saver: AgentMemorySaver) -> None:
    class Doc(TypedDict):
        doc: str
        summary: str
        other: str

    def other(state: Doc) -> dict[str, str]:
        time.sleep(0.05)  # its writes come after the summary's, while the step's requests are in flight
        return {"other": "ok"}

    builder = StateGraph(Doc)
    builder.add_node("summarize", lambda state: {"summary": "s" * 75_000})
    builder.add_node("other", other)
    builder.add_edge(START, "summarize")
    builder.add_edge(START, "other")
    builder.add_edge("summarize", END)
    builder.add_edge("other", END)
    graph: Any = builder.compile(checkpointer=saver)
    inputs = {"doc": "d" * 225_000, "summary": "", "other": ""}

    def config(thread_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id, "context_doc": "z" * 400_000}}

    out = graph.invoke(inputs, config("lg-large-config"))
    out_async = run_async(lambda: graph.ainvoke(inputs, config("lg-large-config-async")))

    assert out["other"] == out_async["other"] == "ok"
    assert len(out["summary"]) == len(out_async["summary"]) == 75_000


@pytest.mark.parametrize("size", [SERVICE_LIMIT, 16 * SERVICE_LIMIT])
def test_a_save_the_service_cannot_take_even_alone_is_its_413_and_the_thread_saves_on(
    saver: AgentMemorySaver, size: int
) -> None:
    stored = saver.put(_config("lg-too-large"), empty_checkpoint(), {"source": "input", "step": -1}, {})
    too_large = [("docs", "x" * size)]

    with pytest.raises(ApiError) as refused:
        saver.put_writes(stored, too_large, "task-1")
    # The service reads what it refuses before answering, so the async client, which writes the whole body
    # before it reads (asyncio drops what arrived when a write fails), gets the answer too.
    with pytest.raises(ApiError) as refused_async:
        run_async(lambda: asyncio.wait_for(saver.aput_writes(stored, too_large, "task-2"), 30))
    saver.put_writes(stored, [("docs", "small")], "task-3")
    run_async(lambda: saver.aput_writes(stored, [("docs", "small")], "task-4"))

    assert refused.value.status == refused_async.value.status == 413
    found = saver.get_tuple(_config("lg-too-large"))
    assert found is not None and sorted(task for task, _, _ in found.pending_writes or []) == ["task-3", "task-4"]


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


@pytest.mark.parametrize(
    "op",
    [
        {
            "op": "checkpoint",
            "checkpoint_ns": "",
            "checkpoint_id": "1ef",
            "parent_checkpoint_id": None,
            "checkpoint": {"v": 4, "note": "é" * 30},
            "metadata": {"source": "loop", "step": 3, "thread": "ü" * 100},
            "blobs": [
                {"channel": "messages", "version": "0002.ab", "type": "msgpack", "blob": "QUJD" * 5000},
                {"channel": "gone", "version": "0003.cd", "type": "empty", "blob": None},
            ],
            "user_id": "u",
        },
        {"op": "checkpoint", "checkpoint_ns": "", "checkpoint_id": "1", "checkpoint": {}, "metadata": {}, "blobs": []},
        {
            "op": "writes",
            "checkpoint_ns": "ns",
            "checkpoint_id": "1ef",
            "task_id": "t",
            "task_path": "",
            "writes": [
                {"channel": "a", "type": "json", "blob": "MTI=", "idx": 0},
                {"channel": "b", "type": "json", "blob": 'ñ"\\', "idx": 1},
            ],
        },
    ],
    ids=["checkpoint", "empty", "writes"],
)
def test_a_save_is_measured_at_least_as_long_as_its_json_and_at_most_a_few_bytes_more(op: dict[str, Any]) -> None:
    # Its base64 values are counted by length rather than encoded twice: the count must never fall short.
    from agent_memory_client.checkpoint import _op_size

    exact = len(encode_body(op)) + 1  # and the comma after it
    assert exact <= _op_size(op) <= exact + 4
