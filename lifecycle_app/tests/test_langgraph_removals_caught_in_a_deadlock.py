"""Checkpoint retention, prune and delete_for_runs caught in a deadlock with a writer of the same thread (threads
with their own database connections). They lock the channel values they may remove in one order; a caller's
transaction of two saves that each send a stored value again takes them in its own, and can close a cycle the
service cannot order away. The removal the database picks as the victim takes its locks again and goes on; a
retention step deadlocked on every attempt leaves its thread as it was, and the job does the other threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from structlog.testing import capture_logs

from conftest import World
from langgraph_app import retention
from langgraph_app.models import ChannelBlob, ThreadCheckpoint
from langgraph_app.retention import RetentionStep, delete_for_runs, prune_threads, retention_step
from langgraph_app.selectors import list_tuples
from langgraph_app.services import Blob, put_checkpoint
from lifecycle_app import jobs
from lifecycle_app.models import JobRun, RunStatus
from sessions_app.models import AgentSession
from tests.concurrency import HELD_AT_MOST_SECONDS, waiting_for_a_lock

pytestmark = pytest.mark.django_db(transaction=True)


def cid(step: int) -> str:
    return f"1f0-{step:04d}"


def put(world: World, thread: str, step: int, *, values: int, parent: int, sends: list[str], run: str) -> None:
    """Checkpoint `step` of `thread`, whose channels `a` and `b` are at version `values`, sending those of
    `sends` (in that order)."""
    put_checkpoint(
        tenant=world.acme.tenant,
        thread_id=thread,
        checkpoint_ns="",
        checkpoint_id=cid(step),
        parent_checkpoint_id=cid(parent) if parent else None,
        checkpoint={
            "v": 4,
            "ts": "2026-01-01T00:00:00+00:00",
            "channel_versions": {"a": str(values), "b": str(values)},
        },
        metadata={"step": step, "run_id": run},
        blobs=[
            Blob(channel=name, version=str(values), type="json", data=f'"{name} {values}"'.encode()) for name in sends
        ],
        user_id="alice",
    )


def grow(world: World, thread: str) -> None:
    """Twenty old checkpoints of run `old`, each storing its own `a` and `b` (in that order)."""
    for step in range(1, 21):
        put(world, thread, step, values=step, parent=step - 1, sends=["a", "b"], run="old")
    ThreadCheckpoint.objects.filter(session__session_id=thread).update(created_at=timezone.now() - timedelta(days=200))


@contextmanager
def deadlocking_writer(world: World, thread: str) -> Iterator[list[BaseException]]:
    """A caller's transaction of two forks of step 3, one sending step 3's `b` again, then (once something waits
    for a lock: the removal, for `b`, holding `a`) one sending its `a` again: a cycle, in which the removal,
    having waited first, is the victim. Yields the writer's errors, filled once it has committed."""
    holding = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with transaction.atomic():
                put(world, thread, 100, values=3, parent=3, sends=["b"], run="new")
                holding.set()
                deadline = time.monotonic() + HELD_AT_MOST_SECONDS  # (a guard: it waits for the removal to wait)
                while not waiting_for_a_lock() and time.monotonic() < deadline:
                    time.sleep(0.01)
                put(world, thread, 101, values=3, parent=3, sends=["a"], run="new")
        except BaseException as exc:
            errors.append(exc)
        finally:
            holding.set()
            connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    assert holding.wait(10)
    try:
        yield errors
    finally:
        writer.join(60)


def in_a_thread(work: Callable[[], Any]) -> Any:
    """What `work` returned (or raised), run on a connection of its own."""
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
    worker.join(60)
    return results[0]


def assert_the_forks_keep_their_values(world: World, thread: str) -> None:
    for fork in (100, 101):
        [saved] = list_tuples(tenant=world.acme.tenant, thread_id=thread, checkpoint_id=cid(fork), limit=1)
        assert sorted((blob.channel, blob.version) for blob in saved.blobs) == [("a", "3"), ("b", "3")]


def test_checkpoint_retention_picked_as_a_deadlocks_victim_locks_the_values_again_and_the_run_succeeds(
    world: World,
) -> None:
    grow(world, "lg-dl")

    with capture_logs() as logs, deadlocking_writer(world, "lg-dl") as errors:
        run = in_a_thread(lambda: jobs.apply_checkpoint_retention(dry_run=False, triggered_by="worker"))

    assert errors == []
    assert isinstance(run, JobRun) and run.status == RunStatus.SUCCEEDED, run
    assert [entry["event"] for entry in logs].count("langgraph_blobs_deadlocked") == 1
    assert_the_forks_keep_their_values(world, "lg-dl")
    # The step waited for the writer, whose forks then count among the latest five: steps 16 and 17 went too.
    assert run.counts["langgraph_checkpoints_deleted"] == 17
    rows = ThreadCheckpoint.objects.filter(session__session_id="lg-dl")
    assert sorted(rows.values_list("checkpoint_id", flat=True)) == [*map(cid, range(18, 21)), cid(100), cid(101)]
    assert ChannelBlob.objects.filter(session__session_id="lg-dl").count() == 2 * 4  # steps 3 and 18-20


@pytest.mark.parametrize("removal", ["prune", "delete_for_runs"])
def test_a_prune_or_delete_for_runs_picked_as_a_deadlocks_victim_locks_the_values_again(
    world: World, removal: str
) -> None:
    grow(world, "lg-dl")

    def remove() -> int:
        if removal == "prune":
            return prune_threads(tenant=world.acme.tenant, thread_ids=["lg-dl"], strategy="keep_latest")
        return delete_for_runs(tenant=world.acme.tenant, run_ids=["old"])

    with capture_logs() as logs, deadlocking_writer(world, "lg-dl") as errors:
        removed = in_a_thread(remove)

    assert errors == []
    assert removed == (19 if removal == "prune" else 20)
    assert [entry["event"] for entry in logs].count("langgraph_blobs_deadlocked") == 1
    assert_the_forks_keep_their_values(world, "lg-dl")


def test_a_retention_step_deadlocked_on_every_attempt_leaves_its_thread_as_it_was(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "DEADLOCK_ATTEMPTS", 1)
    grow(world, "lg-dl")
    session_pk = AgentSession.objects.get(session_id="lg-dl").pk

    with capture_logs() as logs, deadlocking_writer(world, "lg-dl") as errors:
        step = in_a_thread(
            lambda: retention_step(session_pk=session_pk, cutoff=timezone.now(), keep_latest=5, limit=100, wait=False)
        )

    assert errors == []
    assert step == RetentionStep(busy=True, deadlocked=True)
    assert {"event": "langgraph_retention_deadlocked", "session": str(session_pk), "log_level": "warning"} in logs
    assert ThreadCheckpoint.objects.filter(session__session_id="lg-dl").count() == 22
    assert ChannelBlob.objects.filter(session__session_id="lg-dl").count() == 40


def test_a_thread_whose_retention_deadlocks_on_every_attempt_does_not_fail_the_run_of_the_others(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "DEADLOCK_ATTEMPTS", 1)
    grow(world, "lg-dl")
    grow(world, "lg-other")

    with capture_logs() as logs, deadlocking_writer(world, "lg-dl") as errors:
        run = in_a_thread(lambda: jobs.apply_checkpoint_retention(dry_run=False, triggered_by="worker"))

    assert errors == []
    assert isinstance(run, JobRun) and run.status == RunStatus.SUCCEEDED, run
    assert "langgraph_retention_deadlocked" in [entry["event"] for entry in logs]
    other = ThreadCheckpoint.objects.filter(session__session_id="lg-other")
    assert sorted(other.values_list("checkpoint_id", flat=True)) == list(map(cid, range(16, 21)))
    # The job came back to the deadlocked thread once the others were done, and the writer had committed then.
    assert_the_forks_keep_their_values(world, "lg-dl")
