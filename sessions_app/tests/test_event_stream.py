"""Appending to a session's event stream: server-assigned versions, expected versions, types and payloads."""

from __future__ import annotations

import pytest

from conftest import World
from sessions_app.models import Event
from sessions_app.tests.helpers import append, create_session, head_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(world: World) -> str:
    create_session(world.acme.client, "s", "alice")
    return "s"


def test_a_single_event_gets_version_one_and_reads_back_decoded(world: World, session: str) -> None:
    response = world.acme.client.post(
        f"/api/v1/sessions/{session}/events",
        {"type": "NODE_TRANSITION", "payload": {"node": "plan"}},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert body["head_version"] == 1
    assert body["events"][0]["version"] == 1
    assert body["events"][0]["type"] == "NODE_TRANSITION"
    stored = world.acme.client.get(f"/api/v1/sessions/{session}/events").json()["results"][0]
    assert stored["payload"] == {"node": "plan"}


def test_a_batch_gets_consecutive_versions_after_the_head(world: World, session: str) -> None:
    append(world.acme.client, session, ("NODE_TRANSITION", {"node": "a"}))
    response = append(
        world.acme.client,
        session,
        ("TOOL_EXECUTED", {"tool": "search", "result": [1, 2]}),
        ("MESSAGE_ADDED", {"role": "assistant", "content": "done"}),
        ("my.custom:event", {"anything": True}),
    )

    assert [e["version"] for e in response.json()["events"]] == [2, 3, 4]
    assert head_version(session) == 4


def test_an_append_with_a_stale_expected_version_is_a_409_with_the_current_version(world: World, session: str) -> None:
    append(world.acme.client, session, ("NODE_TRANSITION", {"node": "a"}))

    response = append(world.acme.client, session, ("NODE_TRANSITION", {"node": "b"}), expected_version=0)

    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"current_version": 1, "expected_version": 0}
    assert head_version(session) == 1
    assert Event.objects.count() == 1


def test_an_append_with_the_current_expected_version_succeeds(world: World, session: str) -> None:
    append(world.acme.client, session, ("NODE_TRANSITION", {"node": "a"}))
    response = append(world.acme.client, session, ("NODE_TRANSITION", {"node": "b"}), expected_version=1)
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("MESSAGE_ADDED", {"content": "no role"}),
        ("MESSAGE_ADDED", {"role": "wizard", "content": "bad role"}),
        ("MESSAGE_ADDED", "not an object"),
        ("TOOL_EXECUTED", {"result": 1}),
        ("NODE_TRANSITION", {"node": ""}),
        ("STATE_PATCHED", {"patch": []}),
        ("STATE_PATCHED", {"patch": [{"op": "explode", "path": "/a"}]}),
        ("STATE_PATCHED", {"patch": [{"op": "add", "path": "no-slash", "value": 1}]}),
        ("STATE_PATCHED", {"patch": [{"op": "add", "path": "/a"}]}),
        ("9starts-with-digit", {}),
        ("has space", {}),
    ],
)
def test_an_invalid_event_is_a_400_and_nothing_is_stored(
    world: World, session: str, event_type: str, payload: object
) -> None:
    append(world.acme.client, session, ("NODE_TRANSITION", {"node": "a"}))

    response = append(world.acme.client, session, ("NODE_TRANSITION", {"node": "ok"}), (event_type, payload))

    assert response.status_code == 400, response.content
    assert head_version(session) == 1
    assert Event.objects.count() == 1


def test_a_patch_that_does_not_apply_to_the_current_state_is_refused(world: World, session: str) -> None:
    response = append(
        world.acme.client, session, ("STATE_PATCHED", {"patch": [{"op": "replace", "path": "/missing", "value": 1}]})
    )
    assert response.status_code == 400
    assert "does not apply" in response.json()["error"]["message"]
    assert head_version(session) == 0


def test_reading_the_stream_from_a_version_pages_oldest_first(world: World, session: str) -> None:
    append(world.acme.client, session, *[("NODE_TRANSITION", {"node": f"n{i}"}) for i in range(7)])

    page = world.acme.client.get(f"/api/v1/sessions/{session}/events", {"after": 2, "limit": 3}).json()
    rest = world.acme.client.get(page["next"]).json()

    assert [e["version"] for e in page["results"]] == [3, 4, 5]
    assert [e["version"] for e in rest["results"]] == [6, 7]
    assert rest["results"][-1]["payload"] == {"node": "n6"}


def test_a_completed_session_accepts_no_more_events(world: World, session: str) -> None:
    world.acme.client.patch(f"/api/v1/sessions/{session}", {"status": "completed"}, format="json")

    response = append(world.acme.client, session, ("NODE_TRANSITION", {"node": "late"}))

    assert response.status_code == 409
    assert head_version(session) == 0


def test_an_empty_batch_is_refused(world: World, session: str) -> None:
    response = world.acme.client.post(f"/api/v1/sessions/{session}/events", {"events": []}, format="json")
    assert response.status_code == 400


def test_single_and_batch_forms_cannot_be_mixed(world: World, session: str) -> None:
    response = world.acme.client.post(
        f"/api/v1/sessions/{session}/events",
        {"type": "X", "payload": {}, "events": [{"type": "Y", "payload": {}}]},
        format="json",
    )
    assert response.status_code == 400


def test_payloads_are_stored_encrypted_through_the_codec(world: World, session: str) -> None:
    append(world.acme.client, session, ("MESSAGE_ADDED", {"role": "user", "content": "secret plans"}))
    stored = bytes(Event.objects.get().payload)
    assert stored[:1] == b"E"
    assert b"secret plans" not in stored
