"""A staff password changed ends that account's open live sockets, as it ends its other logins for the pages;
a login from before the secret key was rotated (still valid through SECRET_KEY_FALLBACKS) keeps its socket."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, override_settings

from conftest import STAFF_PASSWORD, World
from memory_admin.asgi import application
from memory_admin.dashboard import consumers
from memory_admin.dashboard.consumers import CLOSE_FORBIDDEN, LiveConsumer
from memory_admin.tests.sockets import run
from sessions_app.models import EventType
from sessions_app.services import NewEvent, append_events, create_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_changing_a_staff_password_closes_that_accounts_open_live_socket(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "ROLE_RECHECK_SECONDS", 0.0)
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="s")
    browser = Client()
    assert browser.login(username=world.support.username, password=STAFF_PASSWORD)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    headers = [(b"cookie", cookie.encode()), (b"origin", b"http://localhost"), (b"host", b"localhost")]

    def change_password() -> None:  # what an admin does to lock a compromised account out
        world.support.set_password("a new password entirely")
        world.support.save()

    async def scenario() -> Any:
        communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        await communicator.send_json_to({"action": "watch_session", "session": str(session.pk), "after_version": 0})
        assert (await communicator.receive_json_from(timeout=5))["type"] == "catchup"
        await database_sync_to_async(change_password)()
        await database_sync_to_async(append_events)(
            session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": "secret-step"})]
        )
        return await communicator.receive_output(timeout=5)

    assert run(scenario) == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
    # The pages say the same of that login.
    assert browser.get("/sessions/").status_code == 302


def test_a_login_made_before_the_secret_key_was_rotated_keeps_its_socket(world: World) -> None:
    old_key = settings.SECRET_KEY
    store = SessionStore()
    store[SESSION_KEY] = str(world.support.pk)
    store[HASH_SESSION_KEY] = world.support.get_session_auth_hash()  # made with the old key
    store.save()

    async def scenario() -> Any:
        communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
        communicator.scope["user"] = world.support
        communicator.scope["session"] = SessionStore(store.session_key)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        await communicator.send_json_to({"action": "dance"})
        reply = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return reply

    with override_settings(
        SECRET_KEY="a rotated secret key, longer than thirty-two characters", SECRET_KEY_FALLBACKS=[old_key]
    ):
        assert run(scenario) == {"type": "error", "message": "unknown action"}


def test_a_session_that_does_not_hold_the_password_hash_is_no_login_for_the_socket(world: World) -> None:
    store = SessionStore()
    store[SESSION_KEY] = str(world.support.pk)
    store.save()

    async def scenario() -> tuple[bool, int | None]:
        communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
        communicator.scope["user"] = world.support
        communicator.scope["session"] = SessionStore(store.session_key)
        connected, code = await communicator.connect(timeout=10)
        return connected, code

    assert run(scenario) == (False, CLOSE_FORBIDDEN)
