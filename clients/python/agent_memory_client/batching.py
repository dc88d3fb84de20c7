"""Group commit for the checkpointer: per thread, one request in flight at a time; what is asked for while it
is in flight goes together in the next request.

LangGraph saves a step's task writes and its checkpoints from executor threads (or tasks) without waiting
for each other, and chains only the checkpoints. Sending each as its own request costs a round trip and the
service's per-request work every time; gathering them costs nothing when nothing else is waiting (the first
caller sends at once). Every caller still returns only once what it asked for is stored (or raises the
request's error), so nothing is acknowledged before it is durable.

A batch holding no "urgent" operation (for the checkpointer: no checkpoint, only task writes, which LangGraph
does not wait for between steps) waits up to `linger` seconds for one to arrive: LangGraph asks for the next
checkpoint right after a step's writes, and the two then share one request instead of queueing one behind
the other.

A batch is sent as consecutive requests of at most `max_bytes` each, by the operations' sizes (`size`), in
order: a step of several large task writes would otherwise be one body over the service's limit, refused
whole although each fits. An operation larger than `max_bytes` goes alone (the service decides: one over its
limit is refused, and its callers get that error, as any request's).
When a request fails, its callers and those of the requests after it (not sent) get its error; the callers of
the requests before it were stored and return.

A forked child starts with every coalescer idle: it inherits the parent's queues and lock, but not the threads
that would have sent those requests and released the lock, so a save of its own would wait for them forever.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from typing import Any, TypeVar

MAX_BATCH = 100
LINGER = 0.005

T = TypeVar("T")


def _requests(
    items: Sequence[T], op: Callable[[T], Any], size: Callable[[Any], int] | None, budget: int
) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive slices of `items` whose ops' sizes add up to at most `budget` (an op larger
    than the budget is a slice of its own); one slice of everything without a `size`."""
    if size is None or len(items) == 1:  # one op goes alone whatever its size: no need to measure it
        yield 0, len(items)
        return
    start, total = 0, 0
    for index, item in enumerate(items):
        try:
            cost = size(op(item))
        except Exception:  # (it cannot be encoded): its request fails as it is sent, and its callers are told
            cost = 0
        if index > start and total + cost > budget:
            yield start, index
            start, total = index, 0
        total += cost
    if start < len(items):
        yield start, len(items)


class _Waiter:
    __slots__ = ("batch", "done", "error", "op", "taken")

    def __init__(self, op: Any) -> None:
        self.op = op
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.batch: list[_Waiter] | None = None  # set when this caller is to send the next request
        self.taken = False  # set when an urgent caller took over the batch this caller was lingering with


class Coalescer:
    """For threads: the caller that finds its key idle sends; the others wait. When a request returns, its
    sender wakes its batch and hands the queue to the first waiter, which sends it as the next request.

    An urgent caller that finds the sender lingering takes its batch over and sends it itself: the request
    leaves without waking the lingering thread first, and its urgent caller returns without being woken
    afterwards (LangGraph's next checkpoint waits on exactly that caller).
    """

    def __init__(
        self,
        send: Callable[[Hashable, list[Any]], None],
        *,
        urgent: Callable[[Any], bool] = lambda op: True,
        linger: float = LINGER,
        max_batch: int = MAX_BATCH,
        size: Callable[[Any], int] | None = None,
        max_bytes: int = 0,
    ) -> None:
        self._send = send
        self._urgent = urgent
        self._linger = linger
        self._max = max_batch
        self._size = size
        self._max_bytes = max_bytes
        self._idle()
        _COALESCERS.add(self)

    def _idle(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queues: dict[Hashable, list[_Waiter]] = {}  # present while a request of the key is in flight
        self._lingering: dict[Hashable, tuple[_Waiter, list[_Waiter]]] = {}  # a sender and its batch, lingering

    def run(self, key: Hashable, op: Any) -> None:
        me = _Waiter(op)
        with self._lock:
            queue = self._queues.get(key)
            lingering = self._lingering.get(key)
            if queue is None:
                self._queues[key] = []
                batch: list[_Waiter] | None = [me]
            elif lingering is not None and self._urgent(op) and len(lingering[1]) + len(queue) < self._max:
                del self._lingering[key]
                sender, batch = lingering
                sender.taken = True  # it waits for this caller's request like any other caller in it
                batch = [*batch, *queue, me]
                queue.clear()
                self._arrived.notify_all()
            else:
                queue.append(me)
                batch = None
                if self._urgent(op):
                    self._arrived.notify_all()
        if batch is None:
            me.done.wait()
            if me.batch is None:  # another caller stored it
                if me.error is not None:
                    raise me.error
                return
            batch = me.batch
            me.done.clear()  # handed the next request: should a checkpoint take it over, wait for that one
        self._lead(key, batch, me)

    def _lead(self, key: Hashable, batch: list[_Waiter], me: _Waiter) -> None:
        if self._linger > 0 and not any(self._urgent(waiter.op) for waiter in batch):
            with self._arrived:
                self._lingering[key] = (me, batch)
                self._arrived.wait_for(
                    lambda: me.taken or any(self._urgent(waiter.op) for waiter in self._queues[key]),
                    timeout=self._linger,
                )
                if not me.taken:
                    del self._lingering[key]
                    room = self._max - len(batch)
                    if room > 0:
                        batch = batch + self._queues[key][:room]
                        self._queues[key] = self._queues[key][room:]
            if me.taken:  # another caller sends this batch: wait for its request like the rest of it
                me.done.wait()
                if me.error is not None:
                    raise me.error
                return
        error: BaseException | None = None
        failed = len(batch)  # the callers from here on get `error`
        for start, end in _requests(batch, _op_of, self._size, self._max_bytes):
            try:
                self._send(key, [waiter.op for waiter in batch[start:end]])
            except BaseException as exc:  # handed to the callers of this request and of those not sent
                error, failed = exc, start
                break
        mine: BaseException | None = None
        with self._lock:
            waiting = self._queues[key]
            if waiting:
                following: list[_Waiter] | None = waiting[: self._max]
                self._queues[key] = waiting[self._max :]
            else:
                del self._queues[key]
                following = None
        for index, waiter in enumerate(batch):
            outcome = error if index >= failed else None
            if waiter is me:
                mine = outcome
            else:
                waiter.error = outcome
                waiter.done.set()
        if following:
            following[0].batch = following
            following[0].done.set()
        if mine is not None:
            raise mine


def _op_of(waiter: _Waiter) -> Any:
    return waiter.op


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _retrieve(future: asyncio.Future[None]) -> None:
    # A caller cancelled while its batch was in flight no longer awaits the outcome: take the exception so
    # asyncio does not log "Future exception was never retrieved".
    if not future.cancelled():
        future.exception()


class AsyncCoalescer:
    """For one event loop's tasks: the first caller for an idle key starts a drain task that sends the queue
    batch after batch until it is empty; every caller awaits its own outcome."""

    def __init__(
        self,
        send: Callable[[Hashable, list[Any]], Awaitable[None]],
        *,
        urgent: Callable[[Any], bool] = lambda op: True,
        linger: float = LINGER,
        max_batch: int = MAX_BATCH,
        size: Callable[[Any], int] | None = None,
        max_bytes: int = 0,
    ) -> None:
        self._send = send
        self._urgent = urgent
        self._linger = linger
        self._max = max_batch
        self._size = size
        self._max_bytes = max_bytes
        self._drains: set[asyncio.Task[None]] = set()
        self._idle()
        _COALESCERS.add(self)

    def _idle(self) -> None:
        # Keyed by id(loop): a loop of a forked child may have the id of one its parent used.
        self._queues: dict[tuple[int, Hashable], list[tuple[Any, asyncio.Future[None]]]] = {}
        self._arrived: dict[tuple[int, Hashable], asyncio.Event] = {}

    async def run(self, key: Hashable, op: Any) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(_retrieve)
        slot = (id(loop), key)
        queue = self._queues.get(slot)
        if queue is None:
            self._queues[slot] = [(op, future)]
            drain = loop.create_task(self._drain(slot, key))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        else:
            queue.append((op, future))
            if self._urgent(op) and slot in self._arrived:
                self._arrived[slot].set()
        await asyncio.shield(future)  # a cancelled caller leaves the batch to go on for the others

    async def _drain(self, slot: tuple[int, Hashable], key: Hashable) -> None:
        queue = self._queues[slot]
        try:
            while queue:
                if self._linger > 0 and not any(self._urgent(op) for op, _ in queue):
                    arrived = self._arrived[slot] = asyncio.Event()
                    try:
                        await asyncio.wait_for(arrived.wait(), self._linger)
                    except TimeoutError:
                        pass
                    finally:
                        self._arrived.pop(slot, None)
                batch, queue[:] = queue[: self._max], queue[self._max :]
                for start, end in _requests(batch, _first, self._size, self._max_bytes):
                    try:
                        await self._send(key, [op for op, _ in batch[start:end]])
                    except BaseException as exc:  # this request's callers and those of the ones not sent
                        for _, future in batch[start:]:
                            if not future.done():
                                future.set_exception(exc)
                        if not isinstance(exc, Exception):
                            raise
                        break
                    for _, future in batch[start:end]:
                        if not future.done():
                            future.set_result(None)
        finally:
            if self._queues.get(slot) is queue:  # (a fork in this loop's thread gave the child new queues)
                del self._queues[slot]
            for _, future in queue:
                if not future.done():
                    future.set_exception(RuntimeError("The checkpointer's save was abandoned."))


_COALESCERS: weakref.WeakSet[Coalescer | AsyncCoalescer] = weakref.WeakSet()


def _idle_after_fork_in_child() -> None:
    for coalescer in list(_COALESCERS):
        coalescer._idle()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_idle_after_fork_in_child)
