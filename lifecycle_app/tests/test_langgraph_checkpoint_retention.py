"""The checkpoint retention job on LangGraph threads (a thread is a session): per thread and namespace it keeps
the latest 5 by checkpoint id and the young ones, removes the others with their writes and the channel values
only they named, counts them in its dry run and on the dashboard, and leaves erased threads and threads that
use a DeltaChannel alone."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from compliance_app.services import approve_erasure
from conftest import World
from langgraph_app.models import ChannelBlob, PendingWrite, ThreadCheckpoint
from lifecycle_app import jobs, selectors
from lifecycle_app.models import RunStatus
from lifecycle_app.policies import policy_groups
from sessions_app.models import AgentSession

pytestmark = pytest.mark.django_db

THREADS = "/api/v1/langgraph/threads"


def b64(text: str) -> str:
    return base64.b64encode(f'"{text}"'.encode()).decode()


def cid(step: int) -> str:
    return f"1f0-{step:04d}"


def save(
    client: Any,
    thread: str,
    step: int,
    *,
    versions: dict[str, str],
    new: tuple[str, ...],
    ns: str = "",
    metadata: dict[str, Any] | None = None,
) -> None:
    """Checkpoint `step` naming `versions`, with the values of the channels in `new` (the ones that changed)."""
    body = {
        "checkpoint_ns": ns,
        "checkpoint_id": cid(step),
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": versions},
        "metadata": metadata or {"step": step},
        "blobs": [
            {"channel": channel, "version": versions[channel], "type": "json", "blob": b64(f"{ns}{channel}@{step}")}
            for channel in new
        ],
        "user_id": "alice",
    }
    if step > 1:
        body["parent_checkpoint_id"] = cid(step - 1)
    response = client.post(f"{THREADS}/{thread}/checkpoints", body, format="json")
    assert response.status_code == 201, response.content


def write(client: Any, thread: str, checkpoint_id: str) -> None:
    body = {"checkpoint_id": checkpoint_id, "task_id": "t1", "writes": [{"channel": "x", "type": "json", "blob": None}]}
    assert client.post(f"{THREADS}/{thread}/writes", body, format="json").status_code == 200


def grow_thread(client: Any, thread: str, *, steps: int, ns: str = "") -> None:
    """`steps` checkpoints: `messages` changes at every step, `config` is set once and named by all of them."""
    for step in range(1, steps + 1):
        versions = {"config": "1", "messages": str(step)}
        save(client, thread, step, versions=versions, new=("config", "messages") if step == 1 else ("messages",), ns=ns)


def age(thread: str, *, days: int = 200) -> None:
    ThreadCheckpoint.objects.filter(session__session_id=thread).update(created_at=timezone.now() - timedelta(days=days))


def kept(thread: str, ns: str = "") -> list[str]:
    rows = ThreadCheckpoint.objects.filter(session__session_id=thread, checkpoint_ns=ns)
    return sorted(rows.values_list("checkpoint_id", flat=True))


def blobs(thread: str, ns: str = "") -> set[tuple[str, str]]:
    rows = ChannelBlob.objects.filter(session__session_id=thread, checkpoint_ns=ns)
    return set(rows.values_list("channel", "version"))


def counts_of(run: Any) -> dict[str, int]:
    return {key: value for key, value in run.counts.items() if key.startswith("langgraph_")}


def test_retention_keeps_each_namespaces_latest_five_and_the_young_ones_with_the_values_they_name(
    world: World,
) -> None:
    client = world.acme.client
    grow_thread(client, "lg-long", steps=20)
    grow_thread(client, "lg-long", steps=8, ns="child:t1")
    for checkpoint_id in (cid(3), cid(18), "1f0-9999"):  # a removed one, a kept one, one still on its way
        write(client, "lg-long", checkpoint_id)
    age("lg-long")
    ThreadCheckpoint.objects.filter(checkpoint_ns="", checkpoint_id=cid(8)).update(created_at=timezone.now())
    before = (kept("lg-long"), blobs("lg-long"), PendingWrite.objects.count())

    dry = jobs.apply_checkpoint_retention(dry_run=True, triggered_by="manual")
    assert (kept("lg-long"), blobs("lg-long"), PendingWrite.objects.count()) == before
    run = jobs.apply_checkpoint_retention(dry_run=False, triggered_by="manual")

    assert kept("lg-long") == [cid(8), *map(cid, range(16, 21))]
    assert kept("lg-long", "child:t1") == list(map(cid, range(4, 9)))
    # `config` is named by the kept checkpoints too: stored once, it stays.
    assert blobs("lg-long") == {("config", "1"), *(("messages", str(step)) for step in (8, 16, 17, 18, 19, 20))}
    assert blobs("lg-long", "child:t1") == {("config", "1"), *(("messages", str(step)) for step in range(4, 9))}
    assert sorted(PendingWrite.objects.values_list("checkpoint_id", flat=True)) == [cid(18), "1f0-9999"]
    parents = dict(
        ThreadCheckpoint.objects.filter(checkpoint_ns="").values_list("checkpoint_id", "parent_checkpoint_id")
    )
    assert parents[cid(16)] == parents[cid(8)] == "" and parents[cid(17)] == cid(16)
    assert run.status == RunStatus.SUCCEEDED and dry.dry_run
    assert (
        counts_of(dry)
        == counts_of(run)
        == {
            "langgraph_checkpoints_deleted": 14 + 3,
            "langgraph_threads": 1,
            "langgraph_delta_threads_kept": 0,
        }
    )
    oldest = client.get(f"{THREADS}/lg-long/checkpoints", {"checkpoint_id": cid(16)}).json()["results"][0]
    assert {value["channel"]: value["blob"] for value in oldest["channel_values"]} == {
        "config": b64("config@1"),
        "messages": b64("messages@16"),
    }
    assert oldest["parent_checkpoint_id"] is None


def test_a_second_run_finds_nothing_left(world: World) -> None:
    grow_thread(world.acme.client, "lg-again", steps=12)
    age("lg-again")
    jobs.apply_checkpoint_retention(dry_run=False, triggered_by="manual")

    again = jobs.apply_checkpoint_retention(dry_run=False, triggered_by="manual")

    assert counts_of(again)["langgraph_checkpoints_deleted"] == 0 and len(kept("lg-again")) == 5


def test_an_erased_persons_thread_is_left_to_the_erasure(world: World) -> None:
    client = world.acme.client
    grow_thread(client, "lg-erased", steps=12)
    age("lg-erased")
    body = {"user_id": "alice", "legal_basis": "gdpr_art_17"}
    approve_erasure(
        request_id=client.post("/api/v1/erasure-requests", body, format="json").json()["id"], decided_by="x"
    )
    assert AgentSession.all_objects.get(session_id="lg-erased").erased_at is not None

    dry = jobs.apply_checkpoint_retention(dry_run=True, triggered_by="manual")
    run = jobs.apply_checkpoint_retention(dry_run=False, triggered_by="manual")

    assert counts_of(dry)["langgraph_checkpoints_deleted"] == counts_of(run)["langgraph_checkpoints_deleted"] == 0
    assert len(kept("lg-erased")) == 12


def test_a_thread_that_uses_a_delta_channel_is_kept_whole(world: World) -> None:
    client = world.acme.client
    grow_thread(client, "lg-delta", steps=12)
    marked = {"step": 13, "counters_since_delta_snapshot": {"log": [3, 3]}}
    save(client, "lg-delta", 13, versions={"config": "1", "messages": "13"}, new=("messages",), metadata=marked)
    grow_thread(client, "lg-plain", steps=12)
    age("lg-delta")
    age("lg-plain")

    run = jobs.apply_checkpoint_retention(dry_run=False, triggered_by="manual")

    assert len(kept("lg-delta")) == 13 and len(kept("lg-plain")) == 5
    assert counts_of(run) == {
        "langgraph_checkpoints_deleted": 7,
        "langgraph_threads": 1,
        "langgraph_delta_threads_kept": 1,
    }


def test_the_dashboard_preview_counts_the_langgraph_checkpoints_retention_would_remove(world: World) -> None:
    grow_thread(world.acme.client, "lg-preview", steps=20)
    age("lg-preview")

    preview = selectors.preview_checkpoint_retention(
        policy_groups()[0].policy, policy_groups()[0].tenant_ids, timezone.now()
    )

    assert preview.counts["langgraph_checkpoints"] == 15 and preview.counts["langgraph_threads"] == 1
    assert "15 LangGraph checkpoints from 1 threads" in preview.summary
