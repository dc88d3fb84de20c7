"""The checkpoint retention job on real checkpoints: it keeps exactly each session's latest 5 plus the young
ones, follows a tenant's override, records its run, and its dry run changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from checkpoints_app.models import Checkpoint
from checkpoints_app.selectors import verify_checkpoints
from checkpoints_app.services import save_checkpoint
from conftest import World
from lifecycle_app import jobs
from lifecycle_app.models import Job, RunStatus
from lifecycle_app.services import set_retention_policy
from sessions_app.models import AgentSession
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


def with_checkpoints(session: AgentSession, *, old: int, young: int = 0) -> AgentSession:
    for step in range(old + young):
        save_checkpoint(session=session, node_id="node", state={"step": step, "notes": ["x"] * (step % 5)})
    cutoff = Checkpoint.objects.filter(session=session).order_by("sequence")[old - 1 : old].get().sequence if old else 0
    Checkpoint.objects.filter(session=session, sequence__lte=cutoff).update(
        created_at=timezone.now() - timedelta(days=45)
    )
    return session


def kept(session: AgentSession) -> list[int]:
    return sorted(Checkpoint.objects.filter(session=session).values_list("sequence", flat=True))


def test_retention_keeps_exactly_the_latest_five_and_the_young_ones(world: World) -> None:
    all_old = with_checkpoints(SessionFactory.create(tenant=world.acme.tenant), old=20)
    mixed = with_checkpoints(SessionFactory.create(tenant=world.acme.tenant), old=12, young=3)
    few = with_checkpoints(SessionFactory.create(tenant=world.acme.tenant), old=4)

    run = jobs.apply_checkpoint_retention(dry_run=False, triggered_by="manual")

    assert kept(all_old) == [16, 17, 18, 19, 20]
    assert kept(mixed) == [11, 12, 13, 14, 15]
    assert kept(few) == [1, 2, 3, 4]
    for session in (all_old, mixed, few):
        assert verify_checkpoints(session=session).valid
    assert run.job == Job.CHECKPOINT_RETENTION and run.status == RunStatus.SUCCEEDED
    assert run.counts["checkpoints_deleted"] == 15 + 10 and run.counts["sessions"] == 2


def test_young_checkpoints_beyond_the_latest_five_are_kept(world: World) -> None:
    session = with_checkpoints(SessionFactory.create(tenant=world.acme.tenant), old=6, young=8)

    jobs.apply_checkpoint_retention(dry_run=False, triggered_by="manual")

    assert kept(session) == list(range(7, 15))


def test_a_tenant_override_keeps_more_for_that_tenant_only(world: World) -> None:
    ours = with_checkpoints(SessionFactory.create(tenant=world.acme.tenant), old=20)
    theirs = with_checkpoints(SessionFactory.create(tenant=world.outsider.tenant), old=20)
    set_retention_policy(tenant=world.outsider.tenant, values={"checkpoint_keep_latest": 8}, updated_by="test")

    jobs.apply_checkpoint_retention(dry_run=False, triggered_by="manual")

    assert len(kept(ours)) == 5 and len(kept(theirs)) == 8


def test_a_disabled_policy_removes_nothing(world: World) -> None:
    session = with_checkpoints(SessionFactory.create(tenant=world.acme.tenant), old=20)
    set_retention_policy(tenant=None, values={"checkpoint_retention_enabled": False}, updated_by="test")

    jobs.apply_checkpoint_retention(dry_run=False, triggered_by="manual")

    assert len(kept(session)) == 20


def test_the_dry_run_reports_what_the_run_then_does(world: World) -> None:
    session = with_checkpoints(SessionFactory.create(tenant=world.acme.tenant), old=18)

    preview = jobs.apply_checkpoint_retention(dry_run=True, triggered_by="manual")
    assert len(kept(session)) == 18
    run = jobs.apply_checkpoint_retention(dry_run=False, triggered_by="manual")

    assert preview.dry_run and preview.counts == run.counts == {
        "checkpoints_deleted": 13,
        "checkpoints_rewritten": run.counts["checkpoints_rewritten"],
        "sessions": 1,
        "langgraph_checkpoints_deleted": 0,
        "langgraph_threads": 0,
        "langgraph_delta_threads_kept": 0,
    }
