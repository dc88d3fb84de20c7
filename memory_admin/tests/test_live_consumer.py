"""The dashboard's WebSocket consumer: staff only, catch-up from a version, then live rows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.auth import UserLazyObject
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore

from conftest import World
from memory_admin.dashboard import consumers
from memory_admin.dashboard.consumers import CLOSE_FORBIDDEN, LiveConsumer
from memory_admin.live import publish, session_group
from memory_admin.tests.sockets import run
from sessions_app.models import EventType
from sessions_app.services import NewEvent, append_events, create_session

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    return communicator


def _nodes(count: int, start: int = 0) -> list[NewEvent]:
    return [NewEvent(EventType.NODE_TRANSITION, {"node": f"n{start + i}"}) for i in range(count)]


def test_a_user_without_a_staff_role_is_refused_on_connect(world: World) -> None:
    async def scenario() -> tuple[bool, int | None]:
        communicator = _communicator(world.nobody)
        connected, code = await communicator.connect(timeout=10)
        return connected, code

    connected, code = run(scenario)
    assert connected is False
    assert code == CLOSE_FORBIDDEN


def test_watching_a_session_catches_up_from_a_version_then_streams_new_rows(world: World) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="s")
    append_events(session=session, events=_nodes(5))

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        communicator = _communicator(world.support)
        await communicator.connect(timeout=10)
        await communicator.send_json_to({"action": "watch_session", "session": str(session.pk), "after_version": 3})
        catchup = await communicator.receive_json_from(timeout=5)
        from channels.db import database_sync_to_async

        await database_sync_to_async(append_events)(session=session, events=_nodes(2, start=5))
        live = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return catchup, live

    catchup, live = run(scenario)

    assert catchup["type"] == "catchup"
    assert [row["version"] for row in catchup["events"]] == [4, 5]
    assert live["type"] == "event.appended"
    assert [row["version"] for row in live["events"]] == [6, 7]
    assert live["events"][1]["summary"] == "→ n6"


def test_a_role_revoked_while_connected_closes_the_socket_on_the_next_frame(world: World) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="s")

    async def scenario() -> Any:
        communicator = _communicator(world.support)
        await communicator.connect(timeout=10)
        from channels.db import database_sync_to_async

        await database_sync_to_async(world.support.groups.clear)()
        await communicator.send_json_to({"action": "watch_session", "session": str(session.pk), "after_version": 0})
        return await communicator.receive_output(timeout=5)

    output = run(scenario)
    assert output == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


def test_unknown_sessions_and_actions_get_an_error_frame(world: World) -> None:
    async def scenario() -> list[dict[str, Any]]:
        communicator = _communicator(world.support)
        await communicator.connect(timeout=10)
        frames = []
        for frame in (
            {"action": "watch_session", "session": "not-a-uuid", "after_version": 0},
            {"action": "dance"},
            {"action": "watch_tenant", "tenant": "nope"},
        ):
            await communicator.send_json_to(frame)
            frames.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
        return frames

    frames = run(scenario)
    assert [frame["type"] for frame in frames] == ["error", "error", "error"]


def test_an_idle_socket_stays_open_past_the_channel_layers_blocking_read(world: World) -> None:
    # Each socket's receive loop blocks on Redis for 5 s at a time; redis-py timed that read out after 5 s,
    # which closed every idle dashboard socket (and the page reconnected, over and over).
    async def scenario() -> dict[str, Any]:
        communicator = _communicator(world.support)
        await communicator.connect(timeout=10)
        await asyncio.sleep(6.5)
        await communicator.send_json_to({"action": "dance"})
        answer: dict[str, Any] = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return answer

    assert run(scenario)["type"] == "error"


def test_a_role_revoked_behind_channels_lazy_user_closes_the_socket(world: World) -> None:
    # AuthMiddlewareStack puts a lazy proxy in the scope; the roles cached on the user behind it were never
    # read again, so a demoted admin went on receiving API key rows.
    lazy = UserLazyObject()
    lazy._wrapped = world.support

    async def scenario() -> Any:
        communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
        communicator.scope["user"] = lazy
        await communicator.connect(timeout=10)
        await database_sync_to_async(world.support.groups.clear)()
        await communicator.send_json_to({"action": "dance"})
        return await communicator.receive_output(timeout=5)

    assert run(scenario) == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


def test_logging_out_ends_what_an_open_socket_receives(world: World) -> None:
    store = SessionStore()
    store[SESSION_KEY] = str(world.support.pk)
    store[HASH_SESSION_KEY] = world.support.get_session_auth_hash()
    store.save()

    async def scenario() -> Any:
        communicator = _communicator(world.support)
        communicator.scope["session"] = SessionStore(store.session_key)
        await communicator.connect(timeout=10)
        await database_sync_to_async(store.delete)()  # what logging out does to the session
        await communicator.send_json_to({"action": "dance"})
        return await communicator.receive_output(timeout=5)

    assert run(scenario) == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


def test_a_staff_user_deleted_while_connected_is_closed_out_not_crashed(world: World) -> None:
    async def scenario() -> Any:
        communicator = _communicator(world.support)
        await communicator.connect(timeout=10)
        await database_sync_to_async(get_user_model().objects.filter(pk=world.support.pk).delete)()
        await communicator.send_json_to({"action": "dance"})
        return await communicator.receive_output(timeout=5)

    assert run(scenario) == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


def test_malformed_frames_get_an_error_frame_and_the_socket_stays_open(world: World) -> None:
    frames: list[dict[str, Any]] = [
        {"text_data": "not json"},
        {"bytes_data": b"\x00\x01"},
        {"text_data": "[" * 100_000},
        {"text_data": '{"action": "watch_user", "tenant": "' + str(world.acme.tenant.pk) + '", "user_id": "\\ud800"}'},
    ]
    sinces = ["0001-01-01T00:00:00+00:00", "2026-01-01T00:00:00+23:59", "9999-12-31T23:59:59-12:00"]

    async def scenario() -> tuple[list[str], list[str]]:
        communicator = _communicator(world.support)
        await communicator.connect(timeout=10)
        answers = []
        for frame in frames:
            await communicator.send_to(**frame)
            answers.append((await communicator.receive_json_from(timeout=5))["type"])
        watched = []
        for since in sinces:
            await communicator.send_json_to(
                {"action": "watch_tenant", "tenant": str(world.acme.tenant.pk), "since": since}
            )
            watched.append((await communicator.receive_json_from(timeout=5))["type"])
        await communicator.disconnect()
        return answers, watched

    answers, watched = run(scenario)

    assert answers == ["error", "error", "error", "error"]
    assert watched == ["watching", "watching", "watching"]


def test_a_published_message_that_cannot_be_turned_into_frames_is_skipped_and_later_ones_still_arrive(
    world: World,
) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="s")

    async def scenario() -> dict[str, Any]:
        communicator = _communicator(world.support)
        await communicator.connect(timeout=10)
        await communicator.send_json_to({"action": "watch_session", "session": str(session.pk), "after_version": 0})
        assert (await communicator.receive_json_from(timeout=5))["type"] == "catchup"
        # No versions: building its rows fails. It used to end the socket's feed without a word.
        await database_sync_to_async(publish)([session_group(session.pk)], {"type": "event.appended"})
        await database_sync_to_async(append_events)(session=session, events=_nodes(1))
        live: dict[str, Any] = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return live

    live = run(scenario)
    assert live["type"] == "event.appended"
    assert [row["version"] for row in live["events"]] == [1]


def test_a_catch_up_longer_than_one_batch_says_there_is_more_and_the_next_watch_goes_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "CATCHUP_LIMIT", 3)
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="s")
    append_events(session=session, events=_nodes(5))

    async def scenario() -> list[dict[str, Any]]:
        communicator = _communicator(world.support)
        await communicator.connect(timeout=10)
        frames = []
        for after in (0, 3):
            await communicator.send_json_to(
                {"action": "watch_session", "session": str(session.pk), "after_version": after}
            )
            frames.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
        return frames

    first, second = run(scenario)
    assert [row["version"] for row in first["events"]] == [1, 2, 3] and first["more"] is True
    assert [row["version"] for row in second["events"]] == [4, 5] and second["more"] is False
