"""Archive storage may be shared: two deployments (staging and production on one bucket, two profiles of one
checkout on one directory) each keep their objects under their own tenants' ids. Nothing is removed because
this database does not know its folder: only the folders a tenant deletion or an erasure here named go."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from conftest import World
from lifecycle_app import jobs
from lifecycle_app.models import ArchiveRemoval, RunStatus
from lifecycle_app.storage import archive_storage
from tenants_app.models import Tenant
from tenants_app.services import delete_tenants

from .conftest import age, grow_session

pytestmark = pytest.mark.django_db


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()} if root.is_dir() else set()


def test_session_archival_leaves_the_archives_of_tenants_and_sessions_this_database_never_had(
    world: World, archive_dir: Path
) -> None:
    # Another deployment's tenant, and another deployment's session under an id that is a tenant here too.
    theirs = {
        f"{uuid.uuid4()}/{uuid.uuid4()}/events-1-100.json.gz",
        f"{uuid.uuid4()}/{uuid.uuid4()}/session-150.json.gz",
        f"{world.acme.tenant.pk}/{uuid.uuid4()}/events-1-100.json.gz",
    }
    for key in theirs:
        archive_storage().put(key, b"another deployment's archive")
    session = grow_session(world, steps=150)
    age(session, days=120)

    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert run.status == RunStatus.SUCCEEDED, run.errors
    assert run.counts["sessions_archived"] == 1
    assert theirs <= _files(archive_dir)
    assert len(_files(archive_dir) - theirs) == 2  # this session's events and what else it held


def _delete_then_fail(tenant: Tenant) -> None:
    with transaction.atomic():
        delete_tenants(tenants=Tenant.objects.filter(pk=tenant.pk))
        raise RuntimeError("the admin's transaction failed after the deletion")


def test_a_tenant_deletion_rolled_back_removes_nothing_and_records_nothing(
    world: World, archive_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    session = grow_session(world, steps=150)
    age(session, days=120)
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    archived = _files(archive_dir)
    assert archived

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        _delete_then_fail(world.acme.tenant)
    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert Tenant.objects.filter(pk=world.acme.tenant.pk).exists()
    assert not ArchiveRemoval.objects.exists()
    assert run.counts["removed_archive_objects"] == 0
    assert _files(archive_dir) == archived


def test_the_removals_a_tenant_deletion_records_go_with_its_folders_and_another_tenants_stay(
    world: World, archive_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    for who in (world, replace(world, acme=world.outsider)):
        age(grow_session(who, steps=150), days=120)
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    outsiders = {key for key in _files(archive_dir) if key.startswith(f"{world.outsider.tenant.pk}/")}

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        delete_tenants(tenants=Tenant.objects.filter(pk=world.acme.tenant.pk))
    assert list(ArchiveRemoval.objects.values_list("folder", flat=True)) == [str(world.acme.tenant.pk)]
    for callback in callbacks:
        callback()

    assert not ArchiveRemoval.objects.exists()
    assert _files(archive_dir) == outsiders
