"""Event archival: old events a snapshot folds leave Postgres; the head state and the hot context stay identical,
and time travel to an archived version says so through the API and reads the archive on the dashboard."""

from __future__ import annotations

import pytest

from conftest import World, logged_in
from lifecycle_app import jobs
from lifecycle_app.archival import archive_events_upto
from lifecycle_app.models import ArchiveSegment
from lifecycle_app.selectors import state_from_archive
from memory_admin.errors import Archived
from memory_admin.health import redis_client
from sessions_app.models import Event, EventType
from sessions_app.selectors import read_context, rebuild_state
from sessions_app.services import NewEvent, append_events, create_session

from .conftest import age, grow_session

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _window(settings) -> None:
    settings.CONTEXT_WINDOW_MESSAGES = 20
    settings.EVENT_RETENTION_DAYS = 30


def test_old_folded_events_are_archived_and_the_head_stays_identical(world: World) -> None:
    session = grow_session(world, steps=1050)
    head = rebuild_state(session, version=1050).state
    context_before = read_context(session=session, touch=False).messages
    age(session, days=40)
    redis_client().flushdb()

    run = jobs.archive_events(dry_run=False, triggered_by="manual")

    # The 20 newest messages reach back to version 972: the newest snapshot below it is 900.
    assert Event.objects.filter(session=session).order_by("version").values_list("version", flat=True)[0] == 901
    assert run.counts["events"] == 900 and run.counts["sessions"] == 1
    assert rebuild_state(session, version=1050).state == head
    assert rebuild_state(session, version=900).state == state_from_archive(session, version=900).state
    assert read_context(session=session, touch=False).messages == context_before


def test_events_inside_the_retention_window_stay(world: World) -> None:
    session = grow_session(world, steps=400)
    age(session, days=10)

    run = jobs.archive_events(dry_run=False, triggered_by="manual")

    assert Event.objects.filter(session=session).count() == 400
    assert run.counts["events"] == 0


def test_time_travel_to_an_archived_version_is_a_410_in_the_api_and_read_back_on_the_dashboard(world: World) -> None:
    session = grow_session(world, steps=600)
    expected = {version: rebuild_state(session, version=version).state for version in (0, 37, 250, 599)}
    age(session, days=40)
    jobs.archive_events(dry_run=False, triggered_by="manual")
    assert ArchiveSegment.objects.filter(session=session).exists()

    with pytest.raises(Archived):
        rebuild_state(session, version=250)
    response = world.acme.client.get(f"/api/v1/sessions/{session.session_id}/state", {"version": 250})
    assert response.status_code == 410 and response.json()["error"]["code"] == "archived"

    page = logged_in(world.support)
    for version, state in expected.items():
        body = page.get(f"/sessions/{session.pk}/state.json", {"version": version}).json()
        assert body["state"] == state, version
    assert page.get(f"/sessions/{session.pk}/state.json", {"version": 250}).json()["from_archive"] is True
    assert page.get(f"/sessions/{session.pk}/state.json", {"version": 599}).json()["from_archive"] is False


def test_reading_the_stream_from_before_the_archived_events_is_a_410_not_a_history_with_a_hole(
    world: World,
) -> None:
    session = grow_session(world, steps=600)
    age(session, days=40)
    jobs.archive_events(dry_run=False, triggered_by="manual")
    first_here = Event.objects.filter(session=session).order_by("version").values_list("version", flat=True)[0]
    url = f"/api/v1/sessions/{session.session_id}/events"

    for after in (None, 0, 10, first_here - 2):
        response = world.acme.client.get(url, {} if after is None else {"after": after})
        assert response.status_code == 410, (after, response.content)
        error = response.json()["error"]
        assert error["code"] == "archived" and error["details"]["first_version_here"] == first_here

    page = world.acme.client.get(url, {"after": first_here - 1, "limit": 5})
    assert page.status_code == 200
    assert [event["version"] for event in page.json()["results"]] == list(range(first_here, first_here + 5))
    following = world.acme.client.get(page.json()["next"])
    assert following.status_code == 200 and following.json()["results"][0]["version"] == first_here + 5


def test_a_cursor_read_across_events_archived_since_is_a_410_not_a_history_with_a_hole(world: World) -> None:
    session = grow_session(world, steps=150)
    url = f"/api/v1/sessions/{session.session_id}/events"
    first_page = world.acme.client.get(url, {"limit": 5}).json()
    second_page = world.acme.client.get(first_page["next"]).json()
    assert [event["version"] for event in second_page["results"]] == [6, 7, 8, 9, 10]

    archive_events_upto(session.pk, upto=100, keep_snapshot=100, limit=500, wait=True)

    # The next pages of a read begun before, back or forward, and a cursor that names no position at all.
    for link in (second_page["next"], second_page["previous"], f"{url}?cursor=", f"{url}?after=3&cursor="):
        response = world.acme.client.get(link)
        assert response.status_code == 410, (link, response.content)
        error = response.json()["error"]
        assert error["code"] == "archived" and error["details"]["first_version_here"] == 101
    here = world.acme.client.get(url, {"after": 100, "limit": 5}).json()
    following = world.acme.client.get(here["next"])
    back = world.acme.client.get(following.json()["previous"])
    assert [event["version"] for event in following.json()["results"]] == list(range(106, 111))
    assert back.status_code == 200
    assert [event["version"] for event in back.json()["results"]] == list(range(101, 106))


def test_events_a_live_tool_state_is_rebuilt_from_stay_until_it_expires(world: World, settings) -> None:
    # Archival protected the context window's events only: with a tool-state lifetime longer than the event
    # retention, a tool state still alive was gone once Redis lost it.
    settings.EVENT_RETENTION_DAYS = 1
    settings.TOOL_STATE_TTL_SECONDS = 3 * 24 * 3600
    session, _ = create_session(tenant=world.acme.tenant, user_id="user-1", session_id="run-1")
    append_events(
        session=session, events=[NewEvent(EventType.TOOL_STATE_SET, {"tool": "browser", "state": {"tab": 3}})]
    )
    session = grow_session(world, steps=600)
    age(session, days=2)
    url = f"/api/v1/sessions/{session.session_id}/tools/browser"
    assert world.acme.client.get(url).status_code == 200

    jobs.archive_events(dry_run=False, triggered_by="manual")
    redis_client().flushdb()

    answer = world.acme.client.get(url)
    assert answer.status_code == 200, answer.content
    assert answer.json()["state"] == {"tab": 3}


def test_a_second_run_finds_nothing_more_to_archive(world: World) -> None:
    session = grow_session(world, steps=700)
    age(session, days=40)
    first = jobs.archive_events(dry_run=False, triggered_by="manual")

    second = jobs.archive_events(dry_run=False, triggered_by="manual")

    assert first.counts["events"] > 0 and second.counts["events"] == 0
