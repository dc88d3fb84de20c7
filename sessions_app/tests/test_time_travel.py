"""The state at any version, rebuilt from the nearest snapshot plus replay; snapshots every N events."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from conftest import World
from sessions_app.models import AgentSession, EventSnapshot
from sessions_app.tasks import take_snapshot
from sessions_app.tests.helpers import append, create_session

pytestmark = pytest.mark.django_db


def _state(world: World, version: int | None = None) -> dict[str, Any]:
    params = {} if version is None else {"version": version}
    response = world.acme.client.get("/api/v1/sessions/s/state", params)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def test_the_state_folds_every_built_in_event_type(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    append(
        world.acme.client,
        "s",
        ("MESSAGE_ADDED", {"role": "user", "content": "hi"}),
        ("NODE_TRANSITION", {"node": "plan"}),
        ("TOOL_EXECUTED", {"tool": "search", "result": {"hits": 3}}),
        ("TOOL_STATE_SET", {"tool": "crawler", "state": {"page": 2}}),
        ("STATE_PATCHED", {"patch": [{"op": "add", "path": "/goal", "value": "book a flight"}]}),
        ("AUDIT_NOTE", {"text": "custom"}),
    )

    state = _state(world)["state"]

    assert state["messages"] == [{"role": "user", "content": "hi"}]
    assert state["current_node"] == "plan"
    assert state["tool_results"] == {"search": {"hits": 3}}
    assert state["tool_state"] == {"crawler": {"page": 2}}
    assert state["data"] == {"goal": "book a flight"}
    assert state["custom_events"] == {"AUDIT_NOTE": 1}


def test_time_travel_shows_the_state_as_it_was_at_an_older_version(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    for node in ("a", "b", "c"):
        append(world.acme.client, "s", ("NODE_TRANSITION", {"node": node}))

    assert _state(world, 1)["state"]["current_node"] == "a"
    assert _state(world, 2)["state"]["node_history"] == ["a", "b"]
    assert _state(world, 0)["state"]["current_node"] is None
    assert _state(world)["version"] == 3


def test_a_version_beyond_the_head_is_a_400(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    response = world.acme.client.get("/api/v1/sessions/s/state", {"version": 5})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["head_version"] == 0


@override_settings(EVENT_SNAPSHOT_EVERY=10)
def test_crossing_a_snapshot_boundary_schedules_a_snapshot_after_commit(
    world: World, django_capture_on_commit_callbacks
) -> None:
    create_session(world.acme.client, "s", "alice")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        append(world.acme.client, "s", *[("NODE_TRANSITION", {"node": f"n{i}"}) for i in range(12)])
    assert callbacks, "the append registers its side effects on commit"
    session = AgentSession.objects.get(session_id="s")

    take_snapshot(str(session.pk), 10)
    take_snapshot(str(session.pk), 10)  # a retried task changes nothing

    snapshots = list(EventSnapshot.objects.filter(session=session).values_list("version", flat=True))
    assert snapshots == [10]
    body = _state(world)
    assert (body["snapshot_version"], body["replayed_events"]) == (10, 2)
    assert body["state"]["current_node"] == "n11"


@override_settings(EVENT_SNAPSHOT_EVERY=10)
def test_events_appended_one_at_a_time_get_a_snapshot_every_n_events(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    # An append whose first version was the multiple (one event at a time, the usual agent step) never
    # queued its snapshot, so such streams had none and event archival never ran for them.
    from memory_admin.celery import app

    create_session(world.acme.client, "s", "alice")
    eager, app.conf.task_always_eager = app.conf.task_always_eager, True
    try:
        for i in range(25):
            with django_capture_on_commit_callbacks(execute=True):
                append(world.acme.client, "s", ("NODE_TRANSITION", {"node": f"n{i}"}))
    finally:
        app.conf.task_always_eager = eager

    session = AgentSession.objects.get(session_id="s")
    assert sorted(EventSnapshot.objects.filter(session=session).values_list("version", flat=True)) == [10, 20]


@override_settings(EVENT_SNAPSHOT_EVERY=10)
def test_a_long_replay_leaves_a_snapshot_so_the_next_rebuild_is_short(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    append(world.acme.client, "s", *[("NODE_TRANSITION", {"node": f"n{i}"}) for i in range(40)])

    first = _state(world, 40)
    second = _state(world, 40)

    assert first["replayed_events"] == 40
    assert (second["snapshot_version"], second["replayed_events"]) == (40, 0)
    assert second["state"] == first["state"]


@override_settings(EVENT_SNAPSHOT_EVERY=10)
def test_time_travel_before_a_snapshot_replays_from_an_older_one(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    append(world.acme.client, "s", *[("NODE_TRANSITION", {"node": f"n{i}"}) for i in range(25)])
    session = AgentSession.objects.get(session_id="s")
    take_snapshot(str(session.pk), 10)
    take_snapshot(str(session.pk), 20)

    body = _state(world, 15)

    assert (body["snapshot_version"], body["replayed_events"]) == (10, 5)
    assert body["state"]["current_node"] == "n14"
