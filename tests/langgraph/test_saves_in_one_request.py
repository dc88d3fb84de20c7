"""A thread's checkpoints and task writes travel together: `POST .../saves` stores several of them in order in
one transaction (all or nothing), and the checkpointer's group commit gathers what LangGraph asks to save
while the thread's previous request is in flight — each call still returns only once its own data is stored."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Hashable
from typing import Any

import pytest
from agent_memory_client.batching import AsyncCoalescer, Coalescer
from agent_memory_client.checkpoint import AgentMemorySaver
from django.utils import timezone
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint

from bench.langgraph_bench import STEPS_PER_RUN, build_graph, run_once
from conftest import World
from langgraph_app.models import PendingWrite, ThreadCheckpoint
from sessions_app.models import AgentSession
from tests.langgraph.conftest import run_async


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _checkpoint(checkpoint_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "op": "checkpoint",
        "checkpoint_id": checkpoint_id,
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"topic": 1}},
        "metadata": {"source": "loop", "step": 1},
        "blobs": [{"channel": "topic", "version": "1", "type": "json", "blob": _b64('"refunds"')}],
        **fields,
    }


def _writes(checkpoint_id: str, task_id: str, *writes: tuple[str, str]) -> dict[str, Any]:
    return {
        "op": "writes",
        "checkpoint_id": checkpoint_id,
        "task_id": task_id,
        "writes": [{"channel": channel, "type": "json", "blob": _b64(text)} for channel, text in writes],
    }


def test_one_request_stores_writes_and_checkpoints_in_order(world: World) -> None:
    url = "/api/v1/langgraph/threads/lg-batch/saves"
    body = {
        "ops": [
            _checkpoint("1f0-0001"),
            _writes("1f0-0001", "task-a", ("topic", '"a"'), ("__error__", '"boom"')),
            _writes("1f0-0001", "task-a", ("__error__", '"boom again"')),  # special writes: the later one wins
            _writes("1f0-0001", "task-a", ("topic", '"replayed"')),  # a replayed task changes nothing stored
            _checkpoint("1f0-0002", parent_checkpoint_id="1f0-0001"),
        ],
        "user_id": "u-alice",
    }

    response = world.acme.client.post(url, body, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"checkpoints": 2, "writes": 4}
    rows = ThreadCheckpoint.objects.filter(session__tenant=world.acme.tenant, session__session_id="lg-batch")
    assert sorted(rows.values_list("checkpoint_id", "parent_checkpoint_id")) == [
        ("1f0-0001", ""),
        ("1f0-0002", "1f0-0001"),
    ]
    assert rows.first().session.user_id == "u-alice"  # type: ignore[union-attr]
    page = world.acme.client.get("/api/v1/langgraph/threads/lg-batch/checkpoints", {"checkpoint_id": "1f0-0001"})
    writes = {(w["idx"], base64.b64decode(w["blob"]).decode()) for w in page.json()["results"][0]["pending_writes"]}
    assert writes == {(0, '"a"'), (-1, '"boom again"')}


def test_a_steps_writes_and_checkpoint_keep_langgraphs_write_rules_in_one_statement(world: World) -> None:
    url = "/api/v1/langgraph/threads/lg-step/saves"
    first = {
        "ops": [
            _writes("1f0-0001", "task-b", ("__interrupt__", '"old"')),
            _writes("1f0-0001", "task-c", ("topic", '"old"')),
            _checkpoint("1f0-0001"),
        ]
    }
    second = {
        "ops": [
            _writes("1f0-0001", "task-b", ("__interrupt__", '"new"')),  # special: replaces
            _writes("1f0-0001", "task-c", ("topic", '"new"'), ("topic", '"more"')),  # regular: kept, added
            _checkpoint("1f0-0002", parent_checkpoint_id="1f0-0001"),
        ]
    }
    assert world.acme.client.post(url, first, format="json").json() == {"checkpoints": 1, "writes": 2}
    assert world.acme.client.post(url, second, format="json").json() == {"checkpoints": 1, "writes": 3}

    page = world.acme.client.get("/api/v1/langgraph/threads/lg-step/checkpoints", {"checkpoint_id": "1f0-0001"})
    writes = {
        (w["task_id"], w["idx"], base64.b64decode(w["blob"]).decode())
        for w in page.json()["results"][0]["pending_writes"]
    }
    assert writes == {("task-b", -3, '"new"'), ("task-c", 0, '"old"'), ("task-c", 1, '"more"')}
    ids = ThreadCheckpoint.objects.filter(session__session_id="lg-step").values_list("checkpoint_id", flat=True)
    assert sorted(ids) == ["1f0-0001", "1f0-0002"]


def test_a_step_for_a_thread_whose_session_was_erased_meanwhile_goes_to_a_new_session(world: World) -> None:
    url = "/api/v1/langgraph/threads/lg-erased/saves"
    step = {"ops": [_writes("1f0-0001", "task", ("topic", '"x"')), _checkpoint("1f0-0001")]}
    assert world.acme.client.post(url, step, format="json").status_code == 200  # the service now knows the thread
    erased = AgentSession.objects.get(tenant=world.acme.tenant, session_id="lg-erased")
    AgentSession.objects.filter(pk=erased.pk).update(erased_at=timezone.now())

    later = {"ops": [_writes("1f0-0002", "task", ("topic", '"y"')), _checkpoint("1f0-0002")]}
    assert world.acme.client.post(url, later, format="json").status_code == 200

    assert list(ThreadCheckpoint.objects.filter(session=erased).values_list("checkpoint_id", flat=True)) == ["1f0-0001"]
    assert not PendingWrite.objects.filter(session=erased, checkpoint_id="1f0-0002").exists()
    fresh = AgentSession.objects.get(tenant=world.acme.tenant, session_id="lg-erased", erased_at__isnull=True)
    assert list(ThreadCheckpoint.objects.filter(session=fresh).values_list("checkpoint_id", flat=True)) == ["1f0-0002"]


@pytest.mark.parametrize(
    "bad_op",
    [
        {"op": "nothing"},
        _checkpoint("1f0-0003", extra=1),
        _writes("1f0-0003", ""),
        {**_writes("1f0-0003", "task"), "writes": [{"channel": "c", "type": "json", "blob": "not base64!"}]},
        {**_checkpoint("1f0-0003"), "checkpoint": ["not", "an", "object"]},
    ],
)
def test_a_batch_with_one_bad_save_is_refused_with_400_and_stores_nothing(world: World, bad_op: Any) -> None:
    url = "/api/v1/langgraph/threads/lg-refused/saves"
    response = world.acme.client.post(url, {"ops": [_checkpoint("1f0-0001"), bad_op]}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"]
    assert not ThreadCheckpoint.objects.filter(session__session_id="lg-refused").exists()
    assert not PendingWrite.objects.filter(session__session_id="lg-refused").exists()


def test_the_outsider_saving_under_the_same_thread_id_gets_a_thread_of_its_own(world: World) -> None:
    body = {"ops": [_checkpoint("1f0-0001")]}
    assert world.acme.client.post("/api/v1/langgraph/threads/lg-shared/saves", body, format="json").status_code == 200
    other = {"ops": [_checkpoint("1f0-0009"), _writes("1f0-0001", "task-x", ("topic", '"outsider"'))]}
    assert (
        world.outsider.client.post("/api/v1/langgraph/threads/lg-shared/saves", other, format="json").status_code == 200
    )

    mine = world.acme.client.get("/api/v1/langgraph/threads/lg-shared/checkpoints").json()["results"]
    assert [item["checkpoint_id"] for item in mine] == ["1f0-0001"]
    assert mine[0]["pending_writes"] == []


class _Gate:
    """A `send` that records each request's operations and holds the first one until released."""

    def __init__(self) -> None:
        self.requests: list[list[Any]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.stored: set[Any] = set()

    def send(self, key: Hashable, ops: list[Any]) -> None:
        self.requests.append(list(ops))
        self.started.set()
        self.release.wait(5)
        self.stored.update(ops)


def test_calls_made_while_a_request_is_in_flight_share_the_next_request() -> None:
    gate = _Gate()
    coalescer = Coalescer(gate.send, urgent=lambda op: True)
    returned: list[Any] = []

    def call(op: str) -> None:
        coalescer.run("thread", op)
        assert op in gate.stored  # nothing returns before it is stored
        returned.append(op)

    first = threading.Thread(target=call, args=("c1",))
    first.start()
    assert gate.started.wait(5)
    followers = [threading.Thread(target=call, args=(op,)) for op in ("w1", "w2", "c2")]
    for thread in followers:
        thread.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(coalescer._queues["thread"]) < 3:
        time.sleep(0.001)
    gate.release.set()
    for thread in [first, *followers]:
        thread.join(5)

    assert gate.requests[0] == ["c1"]
    assert sorted(gate.requests[1]) == ["c2", "w1", "w2"] and len(gate.requests) == 2
    assert sorted(returned) == ["c1", "c2", "w1", "w2"]


def test_writes_wait_briefly_for_the_checkpoint_that_follows_them() -> None:
    requests: list[list[str]] = []
    coalescer = Coalescer(lambda key, ops: requests.append(ops), urgent=lambda op: op.startswith("c"), linger=5.0)

    writes = threading.Thread(target=coalescer.run, args=("thread", "w1"))
    started = time.monotonic()
    writes.start()
    while "thread" not in coalescer._queues:
        time.sleep(0.001)
    coalescer.run("thread", "c1")
    writes.join(5)

    assert requests == [["w1", "c1"]]
    assert time.monotonic() - started < 4  # the checkpoint ended the wait, not the linger

    alone = Coalescer(lambda key, ops: requests.append(ops), urgent=lambda op: op.startswith("c"), linger=0.01)
    alone.run("thread", "w2")  # nothing follows: sent once the linger is over
    assert requests[-1] == ["w2"]


def test_the_checkpoint_that_ends_the_wait_is_sent_by_its_own_caller_with_the_writes() -> None:
    requests: list[tuple[str, list[str]]] = []
    coalescer = Coalescer(
        lambda key, ops: requests.append((threading.current_thread().name, list(ops))),
        urgent=lambda op: op.startswith("c"),
        linger=5.0,
    )
    writes = threading.Thread(target=coalescer.run, args=("thread", "w1"), name="writes")
    writes.start()
    while "thread" not in coalescer._lingering:
        time.sleep(0.001)

    coalescer.run("thread", "c1")  # returns once its request is stored, the lingering writes with it
    writes.join(5)

    assert requests == [(threading.current_thread().name, ["w1", "c1"])]
    assert not writes.is_alive() and coalescer._queues == {} and coalescer._lingering == {}
    coalescer.run("thread", "c2")  # the key is idle again: sent at once
    assert requests[-1][1] == ["c2"]


def test_a_failed_request_taken_over_from_lingering_writes_raises_in_both_calls() -> None:
    def send(key: Hashable, ops: list[str]) -> None:
        raise RuntimeError("service down")

    coalescer = Coalescer(send, urgent=lambda op: op.startswith("c"), linger=5.0)
    errors: list[str] = []

    def writes() -> None:
        try:
            coalescer.run("thread", "w1")
        except RuntimeError as exc:
            errors.append(f"w1: {exc}")

    thread = threading.Thread(target=writes)
    thread.start()
    while "thread" not in coalescer._lingering:
        time.sleep(0.001)
    with pytest.raises(RuntimeError, match="service down"):
        coalescer.run("thread", "c1")
    thread.join(5)

    assert errors == ["w1: service down"]


def test_writes_handed_the_next_request_then_taken_over_raise_when_that_request_fails() -> None:
    first_sent, release = threading.Event(), threading.Event()
    requests: list[list[str]] = []

    def send(key: Hashable, ops: list[str]) -> None:
        requests.append(list(ops))
        if ops == ["c0"]:
            first_sent.set()
            release.wait(5)
            return
        time.sleep(0.3)  # long enough for the writes' caller to be awake before the request fails
        raise RuntimeError("service down")

    coalescer = Coalescer(send, urgent=lambda op: op.startswith("c"), linger=5.0)
    outcomes: dict[str, str] = {}

    def call(op: str) -> None:
        try:
            coalescer.run("thread", op)
            outcomes[op] = "stored"
        except RuntimeError as exc:
            outcomes[op] = str(exc)

    checkpoint = threading.Thread(target=call, args=("c0",))
    checkpoint.start()
    assert first_sent.wait(5)
    writes = threading.Thread(target=call, args=("w1",))  # queued behind c0, then handed the next request
    writes.start()
    while not coalescer._queues["thread"]:
        time.sleep(0.001)
    release.set()
    checkpoint.join(5)
    while "thread" not in coalescer._lingering:
        time.sleep(0.001)

    call("c1")  # takes the lingering writes over; its request fails
    writes.join(5)

    assert requests == [["c0"], ["w1", "c1"]]
    assert outcomes == {"c0": "stored", "w1": "service down", "c1": "service down"}


def test_a_failed_request_raises_in_every_call_it_carried() -> None:
    gate = _Gate()

    def send(key: Hashable, ops: list[Any]) -> None:
        gate.send(key, ops)
        if len(gate.requests) == 2:
            raise RuntimeError("service down")

    coalescer = Coalescer(send)
    errors: list[str] = []

    def call(op: str) -> None:
        try:
            coalescer.run("thread", op)
        except RuntimeError as exc:
            errors.append(f"{op}: {exc}")

    threads = [threading.Thread(target=call, args=(op,)) for op in ("a", "b", "c")]
    threads[0].start()
    assert gate.started.wait(5)
    threads[1].start()
    threads[2].start()
    while len(coalescer._queues["thread"]) < 2:
        time.sleep(0.001)
    gate.release.set()
    for thread in threads:
        thread.join(5)

    assert sorted(errors) == ["b: service down", "c: service down"]
    coalescer.run("thread", "d")  # the thread is usable again
    assert gate.requests[-1] == ["d"]


def test_async_calls_made_together_share_one_request() -> None:
    requests: list[list[str]] = []

    async def send(key: Hashable, ops: list[str]) -> None:
        requests.append(list(ops))

    async def main() -> None:
        import asyncio

        coalescer = AsyncCoalescer(send, urgent=lambda op: op.startswith("c"), linger=5.0)
        await asyncio.gather(*(coalescer.run("thread", op) for op in ("w1", "w2", "c1")))
        await coalescer.run("other", "c2")

    run_async(main)
    assert requests == [["w1", "w2", "c1"], ["c2"]]


def test_a_graph_run_stores_every_checkpoint_and_write_with_fewer_requests(
    in_process_threads: dict[str, Any], world: World
) -> None:
    import httpx

    posts: list[int] = []

    class Counting(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                posts.append(1)
            return in_process_threads["transport"].handle_request(request)  # type: ignore[no-any-return]

    saver = AgentMemorySaver(base_url="http://testserver", api_key=world.acme.raw_key, transport=Counting())
    run_once(build_graph(saver), "lg-graph")

    stored = list(saver.list({"configurable": {"thread_id": "lg-graph"}}))
    assert len(stored) == STEPS_PER_RUN
    writes = sum(len(item.pending_writes or []) for item in stored)
    assert writes >= STEPS_PER_RUN - 1
    assert len(posts) < STEPS_PER_RUN + (STEPS_PER_RUN - 1)  # fewer than one request per put and put_writes
    config: RunnableConfig = {"configurable": {"thread_id": "lg-graph-2", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    saver.put(config, checkpoint, {"source": "input", "step": -1}, {})
    assert saver.get_tuple(config) is not None  # a put returns once stored
    saver.close()
