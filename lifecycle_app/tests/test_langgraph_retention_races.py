"""Checkpoint retention on LangGraph threads while agents save and other workers run it (threads with their own
database connections): a save keeps the channel values it stores, and each checkpoint is removed once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from conftest import World
from langgraph_app.models import ChannelBlob, ThreadCheckpoint
from langgraph_app.selectors import list_tuples
from langgraph_app.services import Blob, put_checkpoint
from lifecycle_app import jobs
from lifecycle_app.models import JobRun, RunStatus
from memory_admin.codec import open_bytes
from tests.concurrency import HELD_AT_MOST_SECONDS, at_once, waiting_for_a_lock

pytestmark = pytest.mark.django_db(transaction=True)


def cid(step: int) -> str:
    return f"1f0-{step:04d}"


def put(world: World, thread: str, step: int, *, messages: int, parent: int | None = None) -> None:
    """Checkpoint `step` of `thread`, whose `messages` are at version `messages`, with that value."""
    put_checkpoint(
        tenant=world.acme.tenant,
        thread_id=thread,
        checkpoint_ns="",
        checkpoint_id=cid(step),
        parent_checkpoint_id=cid(parent if parent is not None else step - 1) if step > 1 else None,
        checkpoint={"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"messages": str(messages)}},
        metadata={"step": step},
        blobs=[Blob(channel="messages", version=str(messages), type="json", data=f'"value {messages}"'.encode())],
        user_id="alice",
    )


def grow(world: World, thread: str, *, steps: int) -> None:
    for step in range(1, steps + 1):
        put(world, thread, step, messages=step)
    ThreadCheckpoint.objects.filter(session__session_id=thread).update(created_at=timezone.now() - timedelta(days=200))


def test_a_save_that_finds_its_value_stored_keeps_it_while_retention_removes_the_checkpoints_that_named_it(
    world: World,
) -> None:
    grow(world, "lg-race", steps=20)
    saved, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def fork_from_step_3() -> None:
        # Time travel: a new checkpoint on top of step 3 that sends step 3's value again (already stored, and
        # named only by checkpoints retention removes), committed only once retention is under way.
        try:
            with transaction.atomic():
                put(world, "lg-race", 100, messages=3, parent=3)
                saved.set()
                release.wait(HELD_AT_MOST_SECONDS)
        finally:
            saved.set()
            connection.close()

    def retention() -> None:
        try:
            results["run"] = jobs.apply_checkpoint_retention(dry_run=False, triggered_by="worker")
        finally:
            connection.close()

    saver = threading.Thread(target=fork_from_step_3)
    saver.start()
    assert saved.wait(10)
    worker = threading.Thread(target=retention)
    worker.start()
    # Retention either waits for the save (it holds the value's row) or, if nothing stops it, finishes first.
    deadline = time.monotonic() + 20
    while worker.is_alive() and not waiting_for_a_lock() and time.monotonic() < deadline:
        time.sleep(0.02)
    release.set()
    saver.join(30)
    worker.join(30)

    stored = ChannelBlob.objects.filter(session__session_id="lg-race", channel="messages", version="3").first()
    assert stored is not None, "the fork's value went with the checkpoints retention removed"
    assert open_bytes(stored.blob or b"") == b'"value 3"'
    [fork] = list_tuples(tenant=world.acme.tenant, thread_id="lg-race", checkpoint_id=cid(100), limit=1)
    assert [(blob.channel, blob.version) for blob in fork.blobs] == [("messages", "3")]
    # Retention waited for the save, so the fork counts among the latest five: step 16 went too.
    run = results["run"]
    assert isinstance(run, JobRun) and run.status == RunStatus.SUCCEEDED
    assert run.counts["langgraph_checkpoints_deleted"] == 16
    rows = ThreadCheckpoint.objects.filter(session__session_id="lg-race")
    assert sorted(rows.values_list("checkpoint_id", flat=True)) == [*map(cid, range(17, 21)), cid(100)]


def test_two_retention_runs_remove_each_thread_checkpoint_once(world: World, settings: Any) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 4
    threads = [f"lg-worker-{n}" for n in range(4)]
    for thread in threads:
        grow(world, thread, steps=25)

    runs = at_once(*[lambda: jobs.apply_checkpoint_retention(dry_run=False, triggered_by="worker")] * 2)

    assert all(isinstance(run, JobRun) and run.status == RunStatus.SUCCEEDED for run in runs), runs
    assert sum(run.counts["langgraph_checkpoints_deleted"] for run in runs) == 4 * 20
    for thread in threads:
        rows = ThreadCheckpoint.objects.filter(session__session_id=thread)
        assert sorted(rows.values_list("checkpoint_id", flat=True)) == list(map(cid, range(21, 26)))
        assert ChannelBlob.objects.filter(session__session_id=thread).count() == 5
