"""The lifecycle page: admins see and edit the policies, each with its dry run, and the recent job runs;
support and compliance get the 403 page; archives can be read back for an audit."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from checkpoints_app.models import Checkpoint
from checkpoints_app.services import save_checkpoint
from conftest import World, logged_in
from lifecycle_app import jobs
from lifecycle_app.models import ArchiveSegment, JobRun, RetentionPolicy
from sessions_app.models import AgentSession, Event
from sessions_app.services import NewEvent, append_events, create_session
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _archive(settings, tmp_path: Path) -> None:
    settings.ARCHIVE_DIR = tmp_path


@pytest.mark.parametrize("who", ["support", "compliance", "nobody"])
def test_only_admins_may_open_the_lifecycle_page(world: World, who: str) -> None:
    response = logged_in(getattr(world, who)).get("/lifecycle/")

    assert response.status_code == 403


def test_support_cannot_change_a_policy(world: World) -> None:
    response = logged_in(world.support).post("/lifecycle/policy/", {"global-checkpoint_keep_latest": "9"})

    assert response.status_code == 403 and not RetentionPolicy.objects.exists()


def test_the_page_previews_what_checkpoint_retention_would_remove(world: World) -> None:
    session = SessionFactory.create(tenant=world.acme.tenant)
    for step in range(12):
        save_checkpoint(session=session, node_id="n", state={"step": step})
    Checkpoint.objects.update(created_at=timezone.now() - timedelta(days=40))

    response = logged_in(world.admin).get("/lifecycle/")

    assert response.status_code == 200
    assert "would remove 7 checkpoints from 1 sessions" in response.content.decode()
    assert Checkpoint.objects.count() == 12


def test_an_admin_sets_a_global_value_and_a_tenant_override(world: World) -> None:
    admin = logged_in(world.admin)

    admin.post("/lifecycle/policy/", {"global-checkpoint_keep_latest": "9", "global-memory_eviction_enabled": "off"})
    admin.post("/lifecycle/overrides/", {"tenant": str(world.outsider.tenant.pk)})
    tenant = world.outsider.tenant.pk
    admin.post(f"/lifecycle/policy/{tenant}/", {f"{tenant}-session_archive_after_days": "30"})

    glob = RetentionPolicy.objects.get(tenant__isnull=True)
    assert glob.checkpoint_keep_latest == 9 and glob.memory_eviction_enabled is False
    assert glob.updated_by == "admin:ada-admin"
    override = RetentionPolicy.objects.get(tenant=world.outsider.tenant)
    assert override.session_archive_after_days == 30 and override.checkpoint_keep_latest is None
    page = admin.get("/lifecycle/").content.decode()
    assert "Override: globex" in page and "idle for more than 30 days" in page


def test_an_out_of_range_value_is_refused_with_a_message(world: World) -> None:
    response = logged_in(world.admin).post("/lifecycle/policy/", {"global-checkpoint_keep_latest": "0"}, follow=True)

    assert "Always keep the latest" in response.content.decode()
    assert not RetentionPolicy.objects.filter(checkpoint_keep_latest=0).exists()


def test_recent_job_runs_are_listed(world: World) -> None:
    jobs.evict_memories(dry_run=True, triggered_by="manual")

    page = logged_in(world.admin).get("/lifecycle/").content.decode()

    assert "Memory decay eviction" in page and "dry run" in page
    assert JobRun.objects.count() == 1


def test_an_archived_session_can_be_read_back_for_an_audit(world: World) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="person-7", session_id="audit-me")
    append_events(session=session, events=[NewEvent("MESSAGE_ADDED", {"role": "user", "content": "hello archive"})])
    long_ago = timezone.now() - timedelta(days=200)
    AgentSession.objects.filter(pk=session.pk).update(last_activity_at=long_ago, updated_at=long_ago)
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    assert not Event.objects.filter(session=session).exists()
    segment = ArchiveSegment.objects.get(session=session, kind="events")
    admin = logged_in(world.admin)

    listing = admin.get(f"/lifecycle/sessions/{session.pk}/archives/")
    detail = admin.get(f"/lifecycle/archives/{segment.pk}/")

    assert listing.status_code == 200 and str(segment.pk) in listing.content.decode()
    assert detail.status_code == 200 and "hello archive" in detail.content.decode()
    # Support staff read the session's live history already, so its archived history too; no role, no page.
    assert logged_in(world.support).get(f"/lifecycle/archives/{segment.pk}/").status_code == 200
    assert logged_in(world.nobody).get(f"/lifecycle/archives/{segment.pk}/").status_code == 403
    session_page = logged_in(world.support).get(f"/sessions/{session.pk}/").content.decode()
    assert f'href="/lifecycle/sessions/{session.pk}/archives/"' in session_page


def test_eviction_candidates_are_listed_with_when_each_goes(world: World) -> None:
    from lifecycle_app.models import EvictionCandidate
    from memories_app.models import Scope
    from memories_app.services import NewMemory, create_memories

    first, second = create_memories(
        tenant=world.acme.tenant,
        items=[NewMemory(scope=Scope.USER, content=f"rarely read {n}", user_id="u-1") for n in range(2)],
    )
    now = timezone.now()
    EvictionCandidate.objects.create(
        memory=first, tenant=world.acme.tenant, marked_at=now - timedelta(days=9), score=0.01
    )
    EvictionCandidate.objects.create(memory=second, tenant=world.acme.tenant, marked_at=now, score=0.02)

    page = logged_in(world.admin).get("/lifecycle/").content.decode()

    section = page[page.index('id="eviction-candidates"') :]
    assert "2 memories fell below" in section and "1 is past the grace period" in section
    assert section.index(str(first.pk)) < section.index(str(second.pk))
    assert "rarely read" not in page


def test_the_outbox_preview_is_on_the_page(world: World) -> None:
    from memories_app.models import ProfileFactOutbox

    ProfileFactOutbox.objects.create(
        tenant=world.acme.tenant, user_id="u-1", fact_key="tea", operation="upsert", content="x", profile_version=1
    )

    page = logged_in(world.admin).get("/lifecycle/").content.decode()

    assert "would apply 1 profile changes to the vector store" in page
