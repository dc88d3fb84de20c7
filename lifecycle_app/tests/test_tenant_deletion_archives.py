"""Deleting a tenant takes its archive out of cold storage too (after the commit, the whole `<tenant>/` folder):
the objects hold operation names and keys and event idempotency keys in plain text. When cold storage cannot be
reached then, the tenant is deleted all the same and the next session archival run removes the folders the
deletion recorded (and those of a person erased meanwhile). Sessions are not deleted by hand in the Django admin."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from compliance_app import services as compliance
from compliance_app.tasks import purge_erasure
from conftest import World
from lifecycle_app import jobs
from lifecycle_app.models import ArchiveRemoval, ArchiveSegment, RunStatus
from lifecycle_app.storage import archive_storage
from sessions_app.models import AgentSession
from tenants_app.models import Tenant
from tenants_app.services import delete_tenants

from .conftest import age, grow_session

pytestmark = pytest.mark.django_db


def _archived(world: World, *, session_id: str = "run-1", user_id: str = "user-1") -> AgentSession:
    session = grow_session(world, steps=150, session_id=session_id, user_id=user_id)
    age(session, days=120)
    return session


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()} if root.is_dir() else set()


def _of(tenant: Tenant, root: Path) -> set[str]:
    return {key for key in _files(root) if key.startswith(f"{tenant.pk}/")}


@pytest.fixture
def unreachable(tmp_path: Path) -> Path:
    """An ARCHIVE_DIR that is a regular file: nothing under it can be listed, written or deleted."""
    path = tmp_path / "not-a-dir"
    path.write_text("a file, not a directory")
    return path


def test_deleting_a_tenant_removes_its_archive_objects_and_leaves_another_tenants_alone(
    world: World, archive_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    _archived(world, session_id="run-1")
    _archived(world, session_id="run-2")
    _archived(replace(world, acme=world.outsider))
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    outsiders = _of(world.outsider.tenant, archive_dir)
    assert _of(world.acme.tenant, archive_dir) and outsiders

    with django_capture_on_commit_callbacks(execute=True):
        delete_tenants(tenants=Tenant.objects.filter(pk=world.acme.tenant.pk))

    assert not Tenant.objects.filter(pk=world.acme.tenant.pk).exists()
    assert _of(world.acme.tenant, archive_dir) == set()
    assert not (archive_dir / str(world.acme.tenant.pk)).exists()
    assert _files(archive_dir) == outsiders == set(ArchiveSegment.objects.values_list("storage_key", flat=True))


def test_a_tenant_deleted_while_cold_storage_is_down_is_deleted_and_the_next_session_archival_removes_its_archive(
    world: World, settings: Any, archive_dir: Path, unreachable: Path, django_capture_on_commit_callbacks: Any
) -> None:
    _archived(world)
    _archived(replace(world, acme=world.outsider))
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    outsiders, acme_objects = _of(world.outsider.tenant, archive_dir), _of(world.acme.tenant, archive_dir)
    assert acme_objects and outsiders

    settings.ARCHIVE_DIR = unreachable
    with django_capture_on_commit_callbacks(execute=True):
        delete_tenants(tenants=Tenant.objects.filter(pk=world.acme.tenant.pk))
    assert not Tenant.objects.filter(pk=world.acme.tenant.pk).exists()
    assert _of(world.acme.tenant, archive_dir) == acme_objects  # left, and recorded for removal
    assert list(ArchiveRemoval.objects.values_list("folder", flat=True)) == [str(world.acme.tenant.pk)]

    down = jobs.archive_sessions(dry_run=False, triggered_by="manual")
    assert down.status == RunStatus.FAILED  # and says so, rather than passing over it
    settings.ARCHIVE_DIR = archive_dir
    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert run.status == RunStatus.SUCCEEDED, run.errors
    assert run.counts["removed_archive_objects"] == len(acme_objects)
    assert _files(archive_dir) == outsiders
    assert not ArchiveRemoval.objects.exists()


def test_the_next_session_archival_removes_the_archive_of_a_person_erased_while_cold_storage_was_down(
    world: World, settings: Any, archive_dir: Path, unreachable: Path, django_capture_on_commit_callbacks: Any
) -> None:
    erased = _archived(world, session_id="run-1", user_id="user-1")
    kept = _archived(world, session_id="run-2", user_id="user-2")
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    kept_objects = {key for key in _files(archive_dir) if key.startswith(f"{kept.tenant_id}/{kept.pk}/")}
    assert kept_objects and _files(archive_dir) - kept_objects

    request = compliance.file_erasure(
        tenant=world.acme.tenant, user_id="user-1", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    compliance.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    settings.ARCHIVE_DIR = unreachable
    with django_capture_on_commit_callbacks(execute=True):
        purge_erasure(str(request.pk))
    assert not AgentSession.all_objects.filter(pk=erased.pk).exists()
    assert _files(archive_dir) - kept_objects  # left behind

    settings.ARCHIVE_DIR = archive_dir
    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert run.status == RunStatus.SUCCEEDED, run.errors
    assert _files(archive_dir) == kept_objects
    assert not ArchiveRemoval.objects.exists()


def test_session_archival_leaves_live_archives_and_folders_not_named_by_an_id_alone(
    world: World, archive_dir: Path
) -> None:
    _archived(world)
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    archived = _files(archive_dir)
    archive_storage().put("backups/readme.txt", b"not an archive of ours")
    archive_storage().put(f"{world.acme.tenant.pk}/exports/readme.txt", b"not a session's")

    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert run.counts["removed_archive_objects"] == 0
    assert _files(archive_dir) == archived | {"backups/readme.txt", f"{world.acme.tenant.pk}/exports/readme.txt"}


def test_deleting_a_tenant_in_the_admin_counts_its_archive_objects_first_then_removes_them(
    world: World, archive_dir: Path, superuser_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    _archived(world)
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    segments = ArchiveSegment.objects.filter(tenant=world.acme.tenant).count()
    assert segments and _of(world.acme.tenant, archive_dir)
    path = f"/django-admin/tenants_app/tenant/{world.acme.tenant.pk}/delete/"

    confirm = superuser_client.get(path)
    with django_capture_on_commit_callbacks(execute=True):
        deleted = superuser_client.post(path, {"post": "yes"})

    assert confirm.status_code == 200
    assert f"archive objects in cold storage: {segments}" in confirm.content.decode().lower()
    assert deleted.status_code == 302
    assert _of(world.acme.tenant, archive_dir) == set()


def test_the_django_admin_does_not_delete_a_session(
    world: World, archive_dir: Path, superuser_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    session = _archived(world)
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    archived = _files(archive_dir)

    with django_capture_on_commit_callbacks(execute=True):
        one = superuser_client.post(f"/django-admin/sessions_app/agentsession/{session.pk}/delete/", {"post": "yes"})
        selected = {"action": "delete_selected", "_selected_action": [str(session.pk)], "post": "yes"}
        bulk = superuser_client.post("/django-admin/sessions_app/agentsession/", selected)
    listing = superuser_client.get("/django-admin/sessions_app/agentsession/")

    assert one.status_code == 403
    assert bulk.status_code in (200, 302)  # "no action selected": the action is not offered
    assert "delete_selected" not in listing.content.decode()
    assert AgentSession.objects.filter(pk=session.pk).exists()
    assert ArchiveSegment.objects.filter(session=session).exists() and _files(archive_dir) == archived
