"""A thread copy while a prune, delete_for_runs or retention of its source commits (threads with their own database
connections): the copy reads the source as of one moment, so each checkpoint it copies comes with the channel
values it names, whatever the removal took from the source meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from conftest import World
from langgraph_app.models import ChannelBlob, ThreadCheckpoint
from langgraph_app.retention import delete_for_runs, prune_threads, retention_step
from langgraph_app.selectors import list_tuples
from langgraph_app.services import Blob, copy_thread, put_checkpoint
from sessions_app.models import AgentSession
from tests.concurrency import HELD_AT_MOST_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)


def cid(step: int) -> str:
    return f"1f0-{step:04d}"


def grow(world: World, thread: str, steps: int) -> None:
    """`steps` checkpoints of run `r1`, each naming its own value of `messages`."""
    for step in range(1, steps + 1):
        put_checkpoint(
            tenant=world.acme.tenant,
            thread_id=thread,
            checkpoint_ns="",
            checkpoint_id=cid(step),
            parent_checkpoint_id=cid(step - 1) if step > 1 else None,
            checkpoint={"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"messages": str(step)}},
            metadata={"step": step, "run_id": "r1"},
            blobs=[Blob(channel="messages", version=str(step), type="json", data=f'"value {step}"'.encode())],
            user_id="alice",
        )


def removals(world: World) -> dict[str, Callable[[], object]]:
    def retention() -> object:
        session_pk = AgentSession.objects.get(session_id="src").pk
        return retention_step(session_pk=session_pk, cutoff=timezone.now(), keep_latest=5, limit=100, wait=False)

    return {
        "prune": lambda: prune_threads(tenant=world.acme.tenant, thread_ids=["src"], strategy="keep_latest"),
        "delete_for_runs": lambda: delete_for_runs(tenant=world.acme.tenant, run_ids=["r1"]),
        "retention": retention,
    }


@pytest.mark.parametrize("removal", ["prune", "delete_for_runs", "retention"])
def test_a_copy_racing_a_removal_of_its_source_copies_the_values_of_every_checkpoint_it_copies(
    world: World, removal: str
) -> None:
    grow(world, "src", 10)
    copied_checkpoints, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def pause_after_the_checkpoints(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if "INSERT INTO langgraph_app_threadcheckpoint" in sql and not copied_checkpoints.is_set():
            copied_checkpoints.set()
            release.wait(HELD_AT_MOST_SECONDS)
        return result

    def copy() -> None:
        try:
            with connection.execute_wrapper(pause_after_the_checkpoints):
                results["copy"] = copy_thread(tenant=world.acme.tenant, source_thread_id="src", target_thread_id="dst")
        except Exception as exc:
            results["copy"] = exc
        finally:
            copied_checkpoints.set()
            connection.close()

    copier = threading.Thread(target=copy)
    copier.start()
    assert copied_checkpoints.wait(10)
    try:
        removed = removals(world)[removal]()
    finally:
        release.set()
        copier.join(60)

    assert removed, "the removal took nothing from the source"
    assert results["copy"] == 10
    stored = set(ChannelBlob.objects.filter(session__session_id="dst").values_list("channel", "version"))
    for checkpoint in ThreadCheckpoint.objects.filter(session__session_id="dst"):
        named = set(checkpoint.checkpoint["channel_versions"].items())
        assert named <= stored, f"{checkpoint.checkpoint_id} names values that were not copied: {named - stored}"
    [third] = list_tuples(tenant=world.acme.tenant, thread_id="dst", checkpoint_id=cid(3), limit=1)
    assert [(value.channel, value.version) for value in third.blobs] == [("messages", "3")]
