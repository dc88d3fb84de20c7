"""Once session archival moved a session's operation journal to the archive, reading the journal is a 410
`archived`, as reading its events is: an agent recovering after a crash is never told that nothing is pending."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from conftest import World
from lifecycle_app import jobs
from lifecycle_app.models import ArchiveKind, ArchiveSegment
from lifecycle_app.services import restore_archive
from sessions_app.models import AgentSession, Operation
from sessions_app.tests.helpers import append, create_session

pytestmark = pytest.mark.django_db

BASE = "/api/v1/sessions/s/operations"


@pytest.fixture(autouse=True)
def archive_dir(settings: Any, tmp_path: Path) -> Path:
    settings.ARCHIVE_DIR = tmp_path / "archive"
    settings.ARCHIVE_STORAGE_BACKEND = ""
    return tmp_path / "archive"


@pytest.fixture
def pending(world: World) -> dict[str, Any]:
    """Session "s" with a step, a completed operation and a pending one (returned)."""
    create_session(world.acme.client, "s", "alice")
    append(world.acme.client, "s", ("NODE_TRANSITION", {"node": "charge"}))
    done = world.acme.client.post(BASE, {"name": "send_email", "key": "mail-1", "params": {}}, format="json").json()
    world.acme.client.post(f"{BASE}/{done['id']}/complete", {"result": "sent"}, format="json")
    operation: dict[str, Any] = world.acme.client.post(
        BASE, {"name": "charge_card", "key": "charge-42", "params": {"amount": 42}}, format="json"
    ).json()
    return operation


def _archive_idle_sessions() -> None:
    """Session "s" idle for 120 days, then the session archival job."""
    when = timezone.now() - timedelta(days=120)
    AgentSession.objects.filter(session_id="s").update(last_activity_at=when, created_at=when, updated_at=when)
    Operation.objects.update(created_at=when)
    Operation.objects.filter(finished_at__isnull=False).update(finished_at=when)
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    assert not Operation.objects.exists()


def _assert_archived(response: Any) -> None:
    assert response.status_code == 410, response.content
    error = response.json()["error"]
    assert error["code"] == "archived" and error["details"] == {"session_id": "s"}


@pytest.mark.parametrize("query", [{"status": "pending"}, {}], ids=["pending", "all"])
def test_listing_the_journal_of_a_session_whose_journal_was_archived_is_a_410(
    world: World, pending: dict[str, Any], query: dict[str, str]
) -> None:
    _archive_idle_sessions()

    response = world.acme.client.get(BASE, query)

    _assert_archived(response)
    assert world.acme.client.get("/api/v1/sessions/s/events").json()["error"]["code"] == "archived"


def test_reading_an_operation_of_a_session_whose_journal_was_archived_is_a_410(
    world: World, pending: dict[str, Any]
) -> None:
    _archive_idle_sessions()

    _assert_archived(world.acme.client.get(f"{BASE}/{pending['id']}"))


def test_the_journal_restored_from_the_archive_is_listed_again(world: World, pending: dict[str, Any]) -> None:
    _archive_idle_sessions()

    restore_archive(segment=ArchiveSegment.objects.get(session__session_id="s", kind=ArchiveKind.SESSION))

    listed = world.acme.client.get(BASE, {"status": "pending"})
    assert listed.status_code == 200 and [o["id"] for o in listed.json()["results"]] == [pending["id"]]
    assert world.acme.client.get(f"{BASE}/{pending['id']}").status_code == 200


def test_an_archived_session_whose_journal_is_still_here_lists_it(world: World, pending: dict[str, Any]) -> None:
    world.acme.client.patch("/api/v1/sessions/s", {"status": "archived"}, format="json")

    listed = world.acme.client.get(BASE, {"status": "pending"})
    unknown = world.acme.client.get(f"{BASE}/00000000-0000-0000-0000-000000000000")

    assert listed.status_code == 200 and [o["id"] for o in listed.json()["results"]] == [pending["id"]]
    assert unknown.status_code == 404


def test_an_operation_another_session_holds_is_still_a_404_after_this_ones_archival(
    world: World, pending: dict[str, Any]
) -> None:
    create_session(world.acme.client, "other", "alice")
    _archive_idle_sessions()

    listed = world.acme.client.get("/api/v1/sessions/other/operations", {"status": "pending"})
    crossed = world.acme.client.get(f"/api/v1/sessions/other/operations/{pending['id']}")

    assert listed.status_code == 200 and listed.json()["results"] == []
    assert crossed.status_code == 404
