"""Store batches that write the same items in different orders at the same time all go through: the service
takes the items' locks in one order whatever the batch's, so they wait for each other instead of deadlocking
(LangGraph's PostgresStore deadlocks there, and the service answered it as "a storage layer is unavailable").
A read leaves the expiry of an item being written to its writer rather than wait for it. Each batch still runs
in its own order, its answers in place. A deadlock with another writer runs the batch again, and one that
lasts every attempt is a 409, not an unavailable layer."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connections, transaction
from structlog.testing import capture_logs

from conftest import World
from langgraph_app import store
from langgraph_app.models import StoreItem
from memory_admin import sql

KEYS = [f"k{number}" for number in range(20)]


def _concurrently(
    world: World, batches: int, make_ops: Callable[[int, random.Random], list[store.Op]]
) -> tuple[list[BaseException], list[tuple[list[store.Op], list[Any]]]]:
    """Four threads, each running `batches` batches at once with the others; the errors, and each batch's
    operations with their answers."""
    errors: list[BaseException] = []
    answered: list[tuple[list[store.Op], list[Any]]] = []
    barrier = threading.Barrier(4)

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            barrier.wait()
            for _ in range(batches):
                ops = make_ops(seed, rnd)
                answered.append((ops, store.run_batch(tenant=world.acme.tenant, ops=ops)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors, answered


def _puts(seed: int, rnd: random.Random) -> list[store.Op]:
    keys = KEYS[:]
    rnd.shuffle(keys)
    return [store.Op("put", {"namespace": ["shared"], "key": key, "value": {"by": seed}}) for key in keys]


def test_batches_putting_the_same_items_in_different_orders_at_once_all_go_through(
    transactional_db: None, world: World
) -> None:
    errors, answered = _concurrently(world, 15, _puts)

    assert errors == [] and len(answered) == 60
    assert sorted(StoreItem.objects.filter(tenant=world.acme.tenant).values_list("key", flat=True)) == sorted(KEYS)


def test_batches_putting_deleting_and_reading_the_same_items_at_once_each_read_their_own_writes_in_order(
    transactional_db: None, world: World
) -> None:
    def mixed(seed: int, rnd: random.Random) -> list[store.Op]:
        ops: list[store.Op] = []
        for put in _puts(seed, rnd):
            ops.append(put)
            if rnd.random() < 0.3:  # deleted again
                ops.append(store.Op("put", {**put.args, "value": None}))
            ops.append(store.Op("get", {"namespace": put.args["namespace"], "key": put.args["key"]}))
        return ops

    errors, answered = _concurrently(world, 10, mixed)

    assert errors == [] and len(answered) == 40
    for ops, results in answered:
        written: dict[str, Any] = {}
        for op, result in zip(ops, results, strict=True):
            if op.kind == "put":
                written[op.args["key"]] = op.args["value"]
                assert result is None
            else:
                assert (result or {}).get("value") == written[op.args["key"]]


def test_batches_reading_items_with_a_ttl_while_others_put_them_all_go_through(
    transactional_db: None, world: World
) -> None:
    # A read pushes back its items' expiry, locking them in the order it reads them: it leaves an item a put
    # holds to that put (which sets its expiry) rather than wait for it holding the others.
    store.run_batch(
        tenant=world.acme.tenant,
        ops=[store.Op("put", {"namespace": ["shared"], "key": key, "value": {}, "ttl": 60}) for key in KEYS],
    )

    def reads_or_puts(seed: int, rnd: random.Random) -> list[store.Op]:
        if seed % 2:
            return [store.Op("put", {**put.args, "ttl": 60}) for put in _puts(seed, rnd)]
        keys = KEYS[:]
        rnd.shuffle(keys)
        return [store.Op("get", {"namespace": ["shared"], "key": key}) for key in keys]

    errors, answered = _concurrently(world, 10, reads_or_puts)

    assert errors == [] and len(answered) == 40
    assert all(result is not None for ops, results in answered if ops[0].kind == "get" for result in results)


@contextmanager
def _deadlocking_writer(world: World) -> Iterator[list[BaseException]]:
    """Items `a` and `b`, and another writer than a batch (a re-embedding updates items in its own order) that
    holds `a` until a batch waits for it, then wants `b`: a batch putting `b` then `a` closes a cycle with it.
    Yields the writer's errors, filled once it is done."""
    store.run_batch(
        tenant=world.acme.tenant,
        ops=[store.Op("put", {"namespace": ["shared"], "key": key, "value": {"v": 1}}) for key in ("a", "b")],
    )
    holding = threading.Event()
    errors: list[BaseException] = []

    def other_writer() -> None:
        try:
            with transaction.atomic():
                StoreItem.objects.filter(key="a").update(embedding_model="other")
                holding.set()
                deadline = time.monotonic() + 30  # (a guard, not a timing: it waits for the batch to wait)
                while time.monotonic() < deadline and not sql.run(_WAITING_FOR_A_LOCK, []):
                    time.sleep(0.01)
                StoreItem.objects.filter(key="b").update(embedding_model="other")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert holding.wait(30)
    try:
        yield errors
    finally:
        thread.join(60)


_WAITING_FOR_A_LOCK = (
    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
    "AND pid <> pg_backend_pid()"
)
_B_THEN_A = [{"op": "put", "namespace": ["shared"], "key": key, "value": {"v": 2}} for key in ("b", "a")]


def test_a_batch_the_database_picks_as_a_deadlocks_victim_runs_again(transactional_db: None, world: World) -> None:
    with _deadlocking_writer(world) as errors:
        # The batch waits first, so its wait ends first: it is the victim (the writer would be otherwise).
        results = store.run_batch(tenant=world.acme.tenant, ops=[store.Op("put", op) for op in _B_THEN_A])

    assert results == [None, None] and errors == []
    assert {item.key: item.value for item in StoreItem.objects.all()} == {"a": {"v": 2}, "b": {"v": 2}}


def test_a_batch_deadlocked_on_every_attempt_is_a_409_not_an_unavailable_layer(
    transactional_db: None, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "BATCH_ATTEMPTS", 1)
    with capture_logs() as logs, _deadlocking_writer(world) as errors:
        response = world.acme.client.post("/api/v1/langgraph/store/batch", {"ops": _B_THEN_A}, format="json")

    assert response.status_code == 409, response.json()
    assert response.json()["error"]["code"] == "conflict"
    assert response.json()["error"]["details"]["reason"] == "deadlock"
    assert errors == [] and "layer_unavailable" not in [entry["event"] for entry in logs]
    assert {item.key: item.value for item in StoreItem.objects.all()} == {"a": {"v": 1}, "b": {"v": 1}}
