"""`prune`, `delete_for_runs` and checkpoint retention while a save or a copy holds its transaction open (threads
with their own database connections): a channel value a save or a copy finds already stored stays, though the
checkpoints that named it until then go; it goes only if no checkpoint names it once the save has committed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from conftest import World
from langgraph_app.models import ChannelBlob, ThreadCheckpoint
from langgraph_app.retention import RetentionStep, delete_for_runs, prune_threads, retention_step
from langgraph_app.selectors import list_tuples
from langgraph_app.services import Blob, copy_thread, put_checkpoint
from memory_admin.codec import open_bytes
from tests.concurrency import HELD_AT_MOST_SECONDS, waiting_for_a_lock

pytestmark = pytest.mark.django_db(transaction=True)


def cid(step: int) -> str:
    return f"1f0-{step:04d}"


def put(world: World, thread: str, step: int, *, messages: int, parent: int | None = None, run: str = "") -> None:
    """Checkpoint `step` of `thread`, whose `messages` are at version `messages`, with that value."""
    put_checkpoint(
        tenant=world.acme.tenant,
        thread_id=thread,
        checkpoint_ns="",
        checkpoint_id=cid(step),
        parent_checkpoint_id=cid(parent if parent is not None else step - 1) if step > 1 else None,
        checkpoint={"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"messages": str(messages)}},
        metadata={"step": step, "run_id": run},
        blobs=[Blob(channel="messages", version=str(messages), type="json", data=f'"value {messages}"'.encode())],
        user_id="alice",
    )


def race(held: Callable[[], object], removal: Callable[[], Any]) -> Any:
    """Run `held` in a transaction kept open until `removal`, started once `held` is done, waits for a lock or
    finishes; then commit it. What `removal` returned (or raised)."""
    done, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def hold() -> None:
        try:
            with transaction.atomic():
                held()
                done.set()
                release.wait(HELD_AT_MOST_SECONDS)
        finally:
            done.set()
            connection.close()

    def remove() -> None:
        try:
            results["removal"] = removal()
        except Exception as exc:
            results["removal"] = exc
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert done.wait(10)
    worker = threading.Thread(target=remove)
    worker.start()
    # The removal either waits for the held transaction (it holds the value's row) or, if nothing stops it,
    # finishes first.
    deadline = time.monotonic() + 20
    while worker.is_alive() and not waiting_for_a_lock() and time.monotonic() < deadline:
        time.sleep(0.02)
    release.set()
    holder.join(30)
    worker.join(30)
    return results.get("removal")


def stored_value(thread: str, version: str) -> bytes | None:
    stored = ChannelBlob.objects.filter(session__session_id=thread, channel="messages", version=version).first()
    return None if stored is None else open_bytes(stored.blob or b"")


def checkpoint_ids(thread: str) -> list[str]:
    return sorted(ThreadCheckpoint.objects.filter(session__session_id=thread).values_list("checkpoint_id", flat=True))


def assert_fork_reads_value_3(world: World, thread: str) -> None:
    assert stored_value(thread, "3") == b'"value 3"', "the fork's value went with the checkpoints that named it"
    [fork] = list_tuples(tenant=world.acme.tenant, thread_id=thread, checkpoint_id=cid(100), limit=1)
    assert [(blob.channel, blob.version) for blob in fork.blobs] == [("messages", "3")]


def test_a_save_that_finds_its_value_stored_keeps_it_while_keep_latest_prunes_the_checkpoints_that_named_it(
    world: World,
) -> None:
    for step in range(1, 6):
        put(world, "lg-prune-race", step, messages=step)

    # Time travel: a new checkpoint on top of step 3 that sends step 3's value again (already stored, and named
    # only by a checkpoint the prune removes), committed only once the prune is under way.
    pruned = race(
        lambda: put(world, "lg-prune-race", 100, messages=3, parent=3),
        lambda: prune_threads(tenant=world.acme.tenant, thread_ids=["lg-prune-race"], strategy="keep_latest"),
    )

    assert pruned == 4
    assert_fork_reads_value_3(world, "lg-prune-race")
    assert checkpoint_ids("lg-prune-race") == [cid(5), cid(100)]
    assert stored_value("lg-prune-race", "1") is None and stored_value("lg-prune-race", "4") is None


def test_a_save_that_finds_its_value_stored_keeps_it_while_delete_for_runs_removes_the_checkpoints_that_named_it(
    world: World,
) -> None:
    for step in range(1, 6):
        put(world, "lg-runs-race", step, messages=step, run="run-1" if step <= 3 else "run-2")

    deleted = race(
        lambda: put(world, "lg-runs-race", 100, messages=3, parent=3, run="run-3"),
        lambda: delete_for_runs(tenant=world.acme.tenant, run_ids=["run-1"]),
    )

    assert deleted == 3
    assert_fork_reads_value_3(world, "lg-runs-race")
    assert checkpoint_ids("lg-runs-race") == [cid(4), cid(5), cid(100)]
    assert stored_value("lg-runs-race", "1") is None and stored_value("lg-runs-race", "2") is None


def test_a_copy_keeps_the_values_it_finds_stored_in_the_target_while_keep_latest_prunes_the_target(
    world: World,
) -> None:
    for step in range(1, 6):
        put(world, "lg-copy-target", step, messages=step)
    put(world, "lg-copy-source", 100, messages=3)  # its value 3 is stored in the target already

    pruned = race(
        lambda: copy_thread(
            tenant=world.acme.tenant, source_thread_id="lg-copy-source", target_thread_id="lg-copy-target"
        ),
        lambda: prune_threads(tenant=world.acme.tenant, thread_ids=["lg-copy-target"], strategy="keep_latest"),
    )

    assert pruned == 4
    assert_fork_reads_value_3(world, "lg-copy-target")
    assert checkpoint_ids("lg-copy-target") == [cid(5), cid(100)]


def test_a_copy_keeps_the_values_it_finds_stored_in_the_target_while_retention_removes_the_targets_checkpoints(
    world: World,
) -> None:
    for step in range(1, 6):
        put(world, "lg-copy-target", step, messages=step)
    ThreadCheckpoint.objects.filter(session__session_id="lg-copy-target").update(
        created_at=timezone.now() - timedelta(days=200)
    )
    put(world, "lg-copy-source", 100, messages=3)
    target = ThreadCheckpoint.objects.filter(session__session_id="lg-copy-target").first()
    assert target is not None

    step = race(
        lambda: copy_thread(
            tenant=world.acme.tenant, source_thread_id="lg-copy-source", target_thread_id="lg-copy-target"
        ),
        lambda: retention_step(
            session_pk=target.session_id, cutoff=timezone.now() - timedelta(days=1), keep_latest=1, limit=100, wait=True
        ),
    )

    assert isinstance(step, RetentionStep) and step.deleted == 4
    assert_fork_reads_value_3(world, "lg-copy-target")
    assert checkpoint_ids("lg-copy-target") == [cid(5), cid(100)]
