"""Dashboard pages for sessions: the filterable list, a session's page and time travel (into the archive too)."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import World, logged_in
from lifecycle_app import jobs
from lifecycle_app.models import ArchiveSegment
from lifecycle_app.storage import archive_storage
from sessions_app.models import AgentSession, EventType
from sessions_app.services import (
    NewEvent,
    append_events,
    append_messages,
    create_session,
    finish_operation,
    record_operation,
    set_tool_state,
)
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def _session(world: World, session_id: str = "s", user_id: str = "alice", tenant: Any = None) -> AgentSession:
    session, _ = create_session(tenant=tenant or world.acme.tenant, user_id=user_id, session_id=session_id)
    return session


def test_the_list_shows_sessions_of_every_tenant_newest_first(world: World) -> None:
    _session(world, "first")
    _session(world, "second", tenant=world.outsider.tenant)

    response = logged_in(world.support).get("/sessions/")

    assert response.status_code == 200
    assert [s.session_id for s in response.context["page"].rows] == ["second", "first"]


def test_the_list_filters_by_tenant_status_and_search(world: World) -> None:
    _session(world, "thread-a", "alice")
    _session(world, "thread-b", "bob")
    _session(world, "other", "alice", tenant=world.outsider.tenant)
    client = logged_in(world.support)

    by_tenant = client.get("/sessions/", {"tenant": str(world.acme.tenant.pk)}).context["page"].rows
    by_prefix = client.get("/sessions/", {"q": "thread-"}).context["page"].rows
    by_user = client.get("/sessions/", {"q": "alice", "tenant": str(world.outsider.tenant.pk)}).context["page"].rows
    by_status = client.get("/sessions/", {"status": "paused"}).context["page"].rows

    assert {s.session_id for s in by_tenant} == {"thread-a", "thread-b"}
    assert {s.session_id for s in by_prefix} == {"thread-a", "thread-b"}
    assert [s.session_id for s in by_user] == ["other"]
    assert by_status == []


def test_the_list_pages_with_a_cursor_that_stays_stable(world: World) -> None:
    for index in range(55):
        _session(world, f"s{index:02d}")
    client = logged_in(world.support)

    first = client.get("/sessions/").context["page"]
    second = client.get("/sessions/", {"cursor": first.next_cursor}).context["page"]

    assert len(first.rows) == 50 and len(second.rows) == 5
    assert second.next_cursor is None
    seen = [s.session_id for s in first.rows + second.rows]
    assert len(set(seen)) == 55


def test_a_malformed_filter_or_cursor_does_not_break_the_list(world: World) -> None:
    _session(world)
    response = logged_in(world.support).get("/sessions/", {"created_after": "not a date", "cursor": "%%%"})
    assert response.status_code == 200
    assert b"were not understood" in response.content


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"created_after": "yesterday"}, "Created after"),
        ({"status": "bogus"}, "Status"),
        ({"q": "x" * 257}, "Session id or user id"),
    ],
    ids=["date", "status", "search"],
)
def test_a_filter_that_does_not_validate_is_named_and_ignored_while_the_others_still_apply(
    world: World, bad: dict[str, str], named: str
) -> None:
    _session(world, "ours")
    _session(world, "theirs", tenant=world.outsider.tenant)

    response = logged_in(world.support).get("/sessions/", {"tenant": str(world.acme.tenant.pk), **bad})

    assert response.status_code == 200
    assert [s.session_id for s in response.context["page"].rows] == ["ours"]
    error = response.content.decode().split('role="alert">', 1)[1].split("</p>", 1)[0]
    assert named in error
    # Only the bad one: the tenant filter is not named as ignored.
    assert "Tenant" not in error
    assert response.context["watched_tenants"] == [str(world.acme.tenant.pk)]


def test_the_unfiltered_list_watches_every_tenant_live_however_many_there_are(world: World) -> None:
    for number in range(60):
        TenantFactory.create(name=f"zz-{number:02d}")

    response = logged_in(world.support).get("/sessions/")

    assert b'data-watch-all="1"' in response.content
    assert b'data-live="1"' in response.content


@pytest.mark.parametrize(
    "created", ["2026-01-01T00:00:00+23:59", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-12:00"]
)
def test_a_cursor_with_a_time_postgres_cannot_take_as_given_still_lists(world: World, created: str) -> None:
    _session(world)
    cursor = base64.urlsafe_b64encode(f"{created}|{uuid.uuid4()}".encode()).decode()

    response = logged_in(world.support).get("/sessions/", {"cursor": cursor})

    assert response.status_code == 200


@pytest.mark.parametrize("field", ["created_after", "created_before"])
@pytest.mark.parametrize("moment", ["2024-01-01T00:00+23:59", "2024-01-01T00:00-16:00", "0001-01-01T00:00+01:00"])
def test_a_date_filter_with_an_offset_postgres_cannot_take_still_lists(world: World, field: str, moment: str) -> None:
    _session(world)

    response = logged_in(world.support).get("/sessions/", {field: moment})

    assert response.status_code == 200


def test_the_list_costs_the_same_few_queries_however_many_sessions(world: World) -> None:
    for index in range(30):
        _session(world, f"s{index}", tenant=world.acme.tenant if index % 2 else world.outsider.tenant)
    client = logged_in(world.support)
    client.get("/sessions/")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/sessions/").status_code == 200
    assert len(queries) <= 8, [q["sql"] for q in queries]


def test_the_session_page_shows_context_journal_and_timeline(world: World, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        session = _session(world)
        append_messages(session=session, messages=[{"role": "user", "content": "book a table for two"}])
        append_events(session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": "reserve"})])
        record_operation(session=session, name="call_restaurant", key="k1", params={"phone": "555"})

    response = logged_in(world.support).get(f"/sessions/{session.pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "book a table for two" in page
    assert "call_restaurant" in page
    assert '(<span id="pending-count">1</span> pending)' in page
    assert [row["version"] for row in response.context["timeline"]] == [1, 2]
    assert response.context["context"].source == "redis"


def test_the_session_page_marks_a_context_rebuilt_from_events(world: World) -> None:
    session = _session(world)
    append_messages(session=session, messages=[{"role": "user", "content": "hello"}])

    page = logged_in(world.support).get(f"/sessions/{session.pk}/").content.decode()

    assert "rebuilt from events" in page


def test_looking_at_a_session_does_not_count_as_agent_activity(
    world: World, django_capture_on_commit_callbacks
) -> None:
    from memory_admin.health import redis_client

    with django_capture_on_commit_callbacks(execute=True):
        session = _session(world)
        append_messages(session=session, messages=[{"role": "user", "content": "hello"}])
    key = f"mem:ctx:{session.pk}"
    redis_client().expire(key, 100)

    logged_in(world.support).get(f"/sessions/{session.pk}/")

    assert redis_client().ttl(key) <= 100


def test_the_session_page_costs_a_bounded_number_of_queries(world: World) -> None:
    session = _session(world)
    append_events(session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": f"n{i}"}) for i in range(150)])
    for index in range(10):
        record_operation(session=session, name="op", key=f"k{index}", params={})
    client = logged_in(world.support)
    client.get(f"/sessions/{session.pk}/")
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/sessions/{session.pk}/").status_code == 200
    assert len(queries) <= 10, [q["sql"] for q in queries]


def test_time_travel_returns_the_state_at_a_version(world: World) -> None:
    session = _session(world)
    append_events(session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": n}) for n in "abc"])
    client = logged_in(world.support)

    body = client.get(f"/sessions/{session.pk}/state.json", {"version": 2}).json()

    assert body["version"] == 2
    assert body["state"]["current_node"] == "b"
    assert client.get(f"/sessions/{session.pk}/state.json", {"version": 9}).status_code == 404
    assert client.get(f"/sessions/{session.pk}/state.json", {"version": "x"}).status_code == 404


def test_time_travel_into_an_archive_that_is_damaged_or_missing_is_a_409_saying_why(
    world: World, settings: Any, tmp_path: Path
) -> None:
    settings.ARCHIVE_DIR, settings.ARCHIVE_STORAGE_BACKEND = tmp_path, ""
    session = _session(world)
    append_events(session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": n}) for n in "abc"])
    long_ago = timezone.now() - timedelta(days=200)
    AgentSession.objects.filter(pk=session.pk).update(last_activity_at=long_ago, updated_at=long_ago)
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    segment = ArchiveSegment.objects.get(session=session, kind="events")
    storage, client, path = archive_storage(), logged_in(world.support), f"/sessions/{session.pk}/state.json"
    assert client.get(path, {"version": 2}).json()["from_archive"] is True

    storage.put(segment.storage_key, storage.get(segment.storage_key)[:-5] + b"xxxxx")
    damaged = client.get(path, {"version": 2})
    storage.delete(segment.storage_key)
    missing = client.get(path, {"version": 2})

    assert damaged.status_code == 409 and damaged.json()["error"]["code"] == "integrity_failure"
    assert damaged.json()["error"]["message"] == "An archive object does not match its recorded checksum."
    assert missing.status_code == 409 and missing.json()["error"]["code"] == "not_found"
    assert missing.json()["error"]["message"] == "The archive object is missing from storage."
    assert client.get(path, {"version": 3}).json()["state"]["current_node"] == "c"  # the head stays readable


def test_session_pages_refuse_users_without_a_staff_role(world: World) -> None:
    session = _session(world)
    client = logged_in(world.nobody)
    for path in ("/sessions/", f"/sessions/{session.pk}/", f"/sessions/{session.pk}/state.json"):
        assert client.get(path).status_code == 403


def test_an_unknown_session_page_is_a_404(world: World) -> None:
    assert logged_in(world.support).get("/sessions/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_the_pending_count_counts_every_pending_operation_not_only_the_newest_shown(world: World) -> None:
    session = _session(world)
    for index in range(3):
        record_operation(session=session, name="charge_card", key=f"pending-{index}", params={})
    for index in range(50):
        operation, _ = record_operation(session=session, name="send_email", key=f"done-{index}", params={})
        finish_operation(session=session, operation_id=operation.pk, status="completed", outcome={"ok": True})

    page = logged_in(world.support).get(f"/sessions/{session.pk}/").content.decode()

    assert '(<span id="pending-count">3</span> pending)' in page


def test_tool_state_and_structured_message_content_show_as_json(
    world: World, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        session = _session(world)
        append_messages(
            session=session,
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": None}]},
                {"role": "assistant", "content": "plain words stay plain"},
            ],
        )
        set_tool_state(session=session, tool="search", state={"done": True, "cursor": None})

    page = logged_in(world.support).get(f"/sessions/{session.pk}/").content.decode()

    assert (
        "<b>user</b> [{&quot;type&quot;: &quot;text&quot;, &quot;text&quot;: &quot;hi&quot;}, "
        "{&quot;type&quot;: &quot;image_url&quot;, &quot;image_url&quot;: null}]"
    ) in page
    assert "<b>assistant</b> plain words stay plain" in page
    assert '<pre class="json">{\n  &quot;done&quot;: true,\n  &quot;cursor&quot;: null\n}</pre>' in page
    card = page.split('id="context-title"')[1].split("</section>")[0]
    assert "True" not in card and "None" not in card


def test_the_list_search_keeps_the_spaces_around_a_user_id(world: World) -> None:
    _session(world, "spaced", " bob ")
    _session(world, "plain", "bob")
    client = logged_in(world.support)

    spaced = client.get("/sessions/", {"q": " bob "}).context["page"].rows
    blank = client.get("/sessions/", {"q": "   "}).context["page"].rows

    assert [s.session_id for s in spaced] == ["spaced"]
    assert {s.session_id for s in blank} == {"spaced", "plain"}  # nothing to search for: the whole list


def test_an_older_page_whose_events_were_archived_says_where_they_are(
    world: World, django_capture_on_commit_callbacks, settings: Any, tmp_path: Any
) -> None:
    from lifecycle_app.archival import archive_events_upto

    settings.ARCHIVE_DIR = tmp_path / "archive"
    with django_capture_on_commit_callbacks(execute=True):
        session = _session(world)
        append_events(
            session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": f"n{i}"}) for i in range(40)]
        )
        archive_events_upto(session.pk, upto=30, keep_snapshot=0, limit=100, wait=True)
    client = logged_in(world.support)

    newest = client.get(f"/sessions/{session.pk}/").content.decode()
    older = client.get(f"/sessions/{session.pk}/", {"before": 31}).content.decode()

    assert '<li data-version="31">' in newest and "?before=31" not in newest  # no link to an empty page
    for page in (newest, older):
        assert "Events up to v30 were moved to the archive" in page
        assert f"/lifecycle/sessions/{session.pk}/archives/" in page
    assert "No events yet." not in older
