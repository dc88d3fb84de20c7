"""Acknowledged writes survive `kill -9` of the server mid-load and a Redis FLUSHALL."""

from __future__ import annotations

import httpx
import pytest

from conftest import World
from memory_admin.health import redis_client
from sessions_app.models import AgentSession, Event
from sessions_app.selectors import decode
from tests.load import WriteLoad, message_writer
from tests.servers import running, web_server

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 6


def test_every_acknowledged_append_survives_a_kill_9_and_a_redis_flush(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    server = web_server()
    load = WriteLoad(server.url, headers)
    server.start()
    try:
        created = httpx.post(f"{server.url}/api/v1/sessions", json={"id": "crash", "user_id": "alice"}, headers=headers)
        assert created.status_code == 201
        load.start(*[message_writer(load, "crash", name=f"writer {i}") for i in range(WRITERS)])
        load.wait_for(150, timeout=20)
        server.kill()
        load.finish()
    finally:
        server.kill()
    redis_client().flushall()
    acknowledged = {version: text for (_, version), text in load.messages.items()}

    assert len(acknowledged) >= 50, "the load ran long enough to mean something"
    session = AgentSession.objects.get(session_id="crash")
    rows = Event.objects.filter(session=session).values_list("version", "payload")
    stored = {version: decode(session, payload)["content"] for version, payload in rows}
    assert {version: stored.get(version) for version in acknowledged} == acknowledged
    assert sorted(stored) == list(range(1, session.head_version + 1)), "versions are gap-free"

    with running(web_server()) as restarted:
        context = httpx.get(f"{restarted.url}/api/v1/sessions/crash/context", headers=headers).json()
    newest = [acknowledged[v] for v in sorted(acknowledged)][-5:]
    assert context["source"] == "rebuilt"
    window = [m["content"] for m in context["messages"]]
    assert all(text in window for text in newest)
