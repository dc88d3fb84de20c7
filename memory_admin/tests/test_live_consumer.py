"""The dashboard's WebSocket consumer: staff only, catch-up from a version, then live rows."""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing.websocket import WebsocketCommunicator

from conftest import World
from memory_admin.dashboard.consumers import CLOSE_FORBIDDEN, LiveConsumer
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
