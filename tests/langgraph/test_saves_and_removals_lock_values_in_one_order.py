"""Saves, copies and removals (retention, prune, delete_for_runs) lock a thread's stored channel values in one
order, their keys' (namespace, channel, version), whatever order a save sends them in or they were stored in, so
they wait for each other instead of deadlocking (threads with their own database connections)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from structlog.testing import capture_logs

from conftest import World
from langgraph_app.models import ChannelBlob, ThreadCheckpoint
from langgraph_app.retention import retention_step
from langgraph_app.selectors import list_tuples
from langgraph_app.services import Blob, CheckpointSave, copy_thread, put_checkpoint, save_batch
from lifecycle_app import jobs
from lifecycle_app.models import JobRun, RunStatus
from sessions_app.models import AgentSession
from tests.concurrency import HELD_AT_MOST_SECONDS, waiting_for_a_lock

pytestmark = pytest.mark.django_db(transaction=True)


def cid(step: int) -> str:
    return f"1f0-{step:04d}"


def blob(channel: str, version: int) -> Blob:
    return Blob(channel=channel, version=str(version), type="json", data=f'"{channel} {version}"'.encode())


def save(step: int, parent: int, versions: dict[str, int], sends: list[Blob]) -> CheckpointSave:
    """Checkpoint `step`, whose channels are at `versions`, sending `sends` (in that order)."""
    document = {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {k: str(v) for k, v in versions.items()}}
    return CheckpointSave("", cid(step), cid(parent) if parent else None, document, {"step": step}, sends)


def put(world: World, thread: str, checkpoint: CheckpointSave) -> None:
    put_checkpoint(
        tenant=world.acme.tenant,
        thread_id=thread,
        checkpoint_ns=checkpoint.checkpoint_ns,
        checkpoint_id=checkpoint.checkpoint_id,
        parent_checkpoint_id=checkpoint.parent_checkpoint_id,
        checkpoint=checkpoint.checkpoint,
        metadata=checkpoint.metadata,
        blobs=checkpoint.blobs,
        user_id="alice",
    )


def batch(world: World, thread: str, saves: list[CheckpointSave]) -> tuple[int, int]:
    return save_batch(tenant=world.acme.tenant, thread_id=thread, saves=saves, user_id="alice")


def grow(world: World, thread: str, steps: int) -> None:
    """`steps` old checkpoints, each storing its own `a` and `b`."""
    for step in range(1, steps + 1):
        put(world, thread, save(step, step - 1, {"a": step, "b": step}, [blob("a", step), blob("b", step)]))
    ThreadCheckpoint.objects.filter(session__session_id=thread).update(created_at=timezone.now() - timedelta(days=200))


def wait_for_a_lock_wait(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not done() and not waiting_for_a_lock() and time.monotonic() < deadline:
        time.sleep(0.02)


def in_a_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """`work` started on a connection of its own; the thread, and a list that gets what it returned (or raised)."""
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(work())
        except Exception as exc:
            results.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    return worker, results


def test_a_batch_that_sends_stored_values_again_in_another_order_waits_for_retention_instead_of_deadlocking(
    world: World,
) -> None:
    grow(world, "lg-order", 20)
    first_saved, release = threading.Event(), threading.Event()

    def pause_after_the_first_checkpoint(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if "INSERT INTO langgraph_app_threadcheckpoint" in sql and not first_saved.is_set():
            first_saved.set()
            release.wait(HELD_AT_MOST_SECONDS)
        return result

    def two_forks() -> tuple[int, int]:
        # Two time-travel saves on step 3 gathered in one request, the first sending its `b` again, then `a`.
        with connection.execute_wrapper(pause_after_the_first_checkpoint):
            return batch(
                world,
                "lg-order",
                [save(100, 3, {"a": 3, "b": 3}, [blob("b", 3)]), save(101, 3, {"a": 3, "b": 3}, [blob("a", 3)])],
            )

    with capture_logs() as logs:
        saver, saved = in_a_thread(two_forks)
        assert first_saved.wait(10)
        worker, runs = in_a_thread(lambda: jobs.apply_checkpoint_retention(dry_run=False, triggered_by="worker"))
        wait_for_a_lock_wait(lambda: not worker.is_alive())
        release.set()
        saver.join(60)
        worker.join(60)

    assert saved == [(2, 0)]
    [run] = runs
    assert isinstance(run, JobRun) and run.status == RunStatus.SUCCEEDED, run
    assert "langgraph_blobs_deadlocked" not in [entry["event"] for entry in logs]
    for fork in (100, 101):
        [kept] = list_tuples(tenant=world.acme.tenant, thread_id="lg-order", checkpoint_id=cid(fork), limit=1)
        assert sorted((value.channel, value.version) for value in kept.blobs) == [("a", "3"), ("b", "3")]


_LOCK_VALUE_SQL = f"""
    SELECT b.id FROM {ChannelBlob._meta.db_table} b JOIN {AgentSession._meta.db_table} s ON s.id = b.session_id
    WHERE s.session_id = %s AND b.channel = %s AND b.version = %s
    FOR UPDATE OF b
"""  # noqa: S608 - table names only


@pytest.mark.parametrize("route", ["put", "step", "batch", "copy"])
def test_a_save_or_copy_that_sends_stored_values_in_another_order_waits_for_a_removal_instead_of_deadlocking(
    world: World, route: str
) -> None:
    # The thread holds `a` and `b` at version 1, `b` stored first.
    put(world, "lg-order", save(1, 0, {"b": 1}, [blob("b", 1)]))
    put(world, "lg-order", save(2, 1, {"a": 1, "b": 1}, [blob("a", 1)]))
    fork = save(100, 2, {"a": 1, "b": 1}, [blob("b", 1), blob("a", 1)])
    if route == "copy":  # the copy's source holds them too, stored in the same order, and the fork
        put(world, "lg-source", save(1, 0, {"b": 1}, [blob("b", 1)]))
        put(world, "lg-source", save(2, 1, {"a": 1, "b": 1}, [blob("a", 1)]))
        put(world, "lg-source", fork)
    writes: dict[str, Callable[[], object]] = {
        "put": lambda: put(world, "lg-order", fork),
        "step": lambda: batch(world, "lg-order", [fork]),
        "batch": lambda: batch(
            world,
            "lg-order",
            [save(100, 2, {"a": 1, "b": 1}, [blob("b", 1)]), save(101, 2, {"a": 1, "b": 1}, [blob("a", 1)])],
        ),
        "copy": lambda: copy_thread(
            tenant=world.acme.tenant, source_thread_id="lg-source", target_thread_id="lg-order"
        ),
    }

    # A removal's locks, taken as removals take them: `a`, then (once the save waits) `b`.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LOCK_VALUE_SQL, ["lg-order", "a", "1"])
        writer, written = in_a_thread(writes[route])
        wait_for_a_lock_wait(lambda: not writer.is_alive())
        cursor.execute(_LOCK_VALUE_SQL, ["lg-order", "b", "1"])
    writer.join(60)

    assert not isinstance(written[0], OperationalError), written[0]
    checkpoints = ThreadCheckpoint.objects.filter(session__session_id="lg-order")
    assert cid(100) in checkpoints.values_list("checkpoint_id", flat=True)
    assert ChannelBlob.objects.filter(session__session_id="lg-order").count() == 2


def test_removals_lock_a_threads_values_in_key_order_whatever_order_they_were_stored_in(world: World) -> None:
    # `b` at version 1 is stored before `a`; checkpoints 1 and 2, which name them, are old.
    put(world, "lg-order", save(1, 0, {"b": 1}, [blob("b", 1)]))
    put(world, "lg-order", save(2, 1, {"a": 1, "b": 1}, [blob("a", 1)]))
    ThreadCheckpoint.objects.filter(session__session_id="lg-order").update(
        created_at=timezone.now() - timedelta(days=200)
    )
    put(world, "lg-order", save(3, 2, {"a": 3, "b": 3}, [blob("a", 3), blob("b", 3)]))
    session_pk = AgentSession.objects.get(session_id="lg-order").pk
    holder_locked, release = threading.Event(), threading.Event()

    def hold_a() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_LOCK_VALUE_SQL, ["lg-order", "a", "1"])
            holder_locked.set()
            release.wait(HELD_AT_MOST_SECONDS)

    holder, _ = in_a_thread(hold_a)
    assert holder_locked.wait(10)
    worker, steps = in_a_thread(
        lambda: retention_step(session_pk=session_pk, cutoff=timezone.now(), keep_latest=1, limit=100, wait=False)
    )
    wait_for_a_lock_wait(lambda: not worker.is_alive())
    # Retention waits for `a`, the first of its values, holding none: `b` is free.
    refused: OperationalError | None = None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_LOCK_VALUE_SQL.replace("FOR UPDATE OF b", "FOR UPDATE OF b NOWAIT"), ["lg-order", "b", "1"])
    except OperationalError as exc:
        refused = exc
    finally:
        release.set()
        holder.join(60)
        worker.join(60)

    assert refused is None, f"retention held `b` while it waited for `a` (saves lock `a` first): {refused!r}"
    assert steps[0].deleted == 2
    assert sorted(ChannelBlob.objects.filter(session__session_id="lg-order").values_list("channel", "version")) == [
        ("a", "3"),
        ("b", "3"),
    ]
