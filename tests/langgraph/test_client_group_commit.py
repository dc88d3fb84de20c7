"""The group commit's requests stay under a byte budget: what a batch gathers goes as consecutive requests in
order, a failed request's error reaches its callers and those of the requests not sent after it, an async
caller that gave up on a failed batch leaves no unretrieved exception behind, and a process forked while a
save was in flight saves on its own."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import Hashable
from typing import Any

import pytest
from agent_memory_client.batching import AsyncCoalescer, Coalescer
from agent_memory_client.checkpoint import AgentMemorySaver
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint

from tests.langgraph.conftest import run_async


class _Held:
    """A `send` that holds its first request until released, records every request, and fails the one that
    carries `failing`."""

    def __init__(self, failing: str | None = None) -> None:
        self.requests: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.failing = failing

    def send(self, key: Hashable, ops: list[str]) -> None:
        self.requests.append(list(ops))
        if len(self.requests) == 1:
            self.started.set()
            self.release.wait(5)
        if self.failing in ops:
            raise RuntimeError(f"refused {self.failing}")


def _queued(coalescer: Coalescer, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(coalescer._queues.get("thread", [])) < count and time.monotonic() < deadline:
        time.sleep(0.001)


def test_a_batch_over_the_byte_budget_goes_as_consecutive_requests_in_order() -> None:
    held = _Held()
    coalescer = Coalescer(held.send, size=len, max_bytes=10, linger=0)
    first = threading.Thread(target=coalescer.run, args=("thread", "c0"))
    first.start()
    assert held.started.wait(5)
    callers = []
    for number, op in enumerate(["aaaa", "bbbb", "cccc", "dddddddddddddddd", "ee", "ff"], start=1):
        callers.append(threading.Thread(target=coalescer.run, args=("thread", op)))
        callers[-1].start()
        _queued(coalescer, number)  # queued in this order
    held.release.set()
    for thread in [first, *callers]:
        thread.join(5)

    assert held.requests == [["c0"], ["aaaa", "bbbb"], ["cccc"], ["dddddddddddddddd"], ["ee", "ff"]]


def test_when_a_request_of_a_batch_fails_its_callers_and_the_later_ones_get_its_error() -> None:
    held = _Held(failing="w3")
    coalescer = Coalescer(held.send, size=len, max_bytes=4, linger=0)
    outcomes: dict[str, str] = {}

    def call(op: str) -> None:
        try:
            coalescer.run("thread", op)
            outcomes[op] = "stored"
        except RuntimeError as exc:
            outcomes[op] = str(exc)

    first = threading.Thread(target=call, args=("c0",))
    first.start()
    assert held.started.wait(5)
    callers = []
    for number, op in enumerate(["w1", "w2", "w3", "w4", "w5"], start=1):
        callers.append(threading.Thread(target=call, args=(op,)))
        callers[-1].start()
        _queued(coalescer, number)
    held.release.set()
    for thread in [first, *callers]:
        thread.join(5)

    assert held.requests == [["c0"], ["w1", "w2"], ["w3", "w4"]]  # the request after the failed one is not sent
    assert outcomes == {
        "c0": "stored",
        "w1": "stored",
        "w2": "stored",
        "w3": "refused w3",
        "w4": "refused w3",
        "w5": "refused w3",
    }
    coalescer.run("thread", "w6")  # the thread is usable again
    assert held.requests[-1] == ["w6"]


def test_async_a_batch_goes_in_requests_under_the_budget_and_a_failure_reaches_the_rest() -> None:
    requests: list[list[str]] = []

    async def send(key: Hashable, ops: list[str]) -> None:
        requests.append(list(ops))
        if "w3" in ops:
            raise RuntimeError("refused w3")

    async def main() -> list[str]:
        coalescer = AsyncCoalescer(send, size=len, max_bytes=4, linger=0)
        results = await asyncio.gather(
            *(coalescer.run("thread", op) for op in ("w1", "w2", "w3", "w4", "w5")), return_exceptions=True
        )
        return ["stored" if result is None else str(result) for result in results]

    outcomes = run_async(main)

    assert requests == [["w1", "w2"], ["w3", "w4"]]
    assert outcomes == ["stored", "stored", "refused w3", "refused w3", "refused w3"]


def _size_or_refuse(op: str) -> int:
    """As the checkpointer measures a save: by encoding it, which fails for a text that cannot be encoded."""
    return len(op.encode())


def test_a_save_that_cannot_be_measured_fails_its_request_and_the_thread_saves_on() -> None:
    # A lone surrogate ("caf\udce9", a file name decoded with surrogateescape) cannot be encoded: measuring the
    # batch raised outside the request, and its callers, and every later save of the thread, waited for good.
    held = _Held(failing="caf\udce9")
    coalescer = Coalescer(held.send, size=_size_or_refuse, max_bytes=100, linger=0)
    outcomes: dict[str, str] = {}

    def call(op: str) -> None:
        try:
            coalescer.run("thread", op)
            outcomes[op] = "stored"
        except RuntimeError:
            outcomes[op] = "refused"

    first = threading.Thread(target=call, args=("c0",), daemon=True)  # (daemons: a hang must not hold pytest)
    first.start()
    assert held.started.wait(5)
    callers = []
    for number, op in enumerate(["w1", "caf\udce9"], start=1):
        callers.append(threading.Thread(target=call, args=(op,), daemon=True))
        callers[-1].start()
        _queued(coalescer, number)
    held.release.set()
    for thread in [first, *callers]:
        thread.join(5)

    assert not any(thread.is_alive() for thread in [first, *callers])
    assert outcomes == {"c0": "stored", "w1": "refused", "caf\udce9": "refused"}
    coalescer.run("thread", "w2")  # the thread is usable again
    assert held.requests[-1] == ["w2"]


def test_async_a_save_that_cannot_be_measured_fails_its_request_and_the_thread_saves_on() -> None:
    async def send(key: Hashable, ops: list[str]) -> None:
        "".join(ops).encode()  # as the body is encoded: the lone surrogate fails here

    async def main() -> list[str]:
        coalescer = AsyncCoalescer(send, size=_size_or_refuse, max_bytes=100, linger=0)
        results = await asyncio.wait_for(
            asyncio.gather(*(coalescer.run("thread", op) for op in ("w1", "caf\udce9")), return_exceptions=True), 5
        )
        await asyncio.wait_for(coalescer.run("thread", "w2"), 5)  # the thread saves on (a hang times out)
        return ["stored" if result is None else type(result).__name__ for result in results]

    outcomes = run_async(main)

    assert outcomes == ["UnicodeEncodeError", "UnicodeEncodeError"]


def test_a_cancelled_async_caller_of_a_failed_batch_leaves_no_unretrieved_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def send(key: Hashable, ops: list[str]) -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("service down")

    async def main() -> None:
        coalescer = AsyncCoalescer(send, linger=0)
        caller = asyncio.ensure_future(coalescer.run("thread", "c1"))
        await asyncio.sleep(0.01)
        caller.cancel()  # gives up while its request is in flight
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.sleep(0.1)  # the request fails
        del caller
        gc.collect()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run_async(main)
        gc.collect()

    assert "exception was never retrieved" not in caplog.text


def test_a_child_forked_while_a_save_was_in_flight_saves_on_the_same_thread(saver: AgentMemorySaver) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "lg-fork", "checkpoint_ns": ""}}
    send = saver.client.save_batch
    in_flight, release = threading.Event(), threading.Event()

    def slow(thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        in_flight.set()
        release.wait(10)
        return send(thread_id, body)

    saver.client.save_batch = slow  # type: ignore[method-assign]
    parent = threading.Thread(target=saver.put, args=(config, empty_checkpoint(), {"source": "input", "step": -1}, {}))
    parent.start()
    assert in_flight.wait(10)
    read_end, write_end = os.pipe()

    pid = os.fork()
    if pid == 0:  # the child: save on the same thread, report whether it returned, leave without cleaning up
        try:
            saver.client.save_batch = send  # type: ignore[method-assign]
            done = threading.Event()

            def save() -> None:
                saver.put(config, empty_checkpoint(), {"source": "loop", "step": 0}, {})
                done.set()

            threading.Thread(target=save, daemon=True).start()
            os.write(write_end, b"saved" if done.wait(10) else b"blocked")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    reported = os.read(read_end, 100)
    os.close(read_end)
    os.close(write_end)
    release.set()
    parent.join(10)

    assert reported == b"saved"
    assert len(list(saver.list(config))) == 2
