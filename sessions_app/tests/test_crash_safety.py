"""Acknowledged writes survive `kill -9` of the server mid-load and a Redis FLUSHALL."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from conftest import World
from memory_admin.health import redis_client
from sessions_app.models import AgentSession, Event
from sessions_app.selectors import decode
from tests.servers import gunicorn, running

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 6


def test_every_acknowledged_append_survives_a_kill_9_and_a_redis_flush(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    server = gunicorn()
    acknowledged: dict[int, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(index: int) -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=5) as client:
            for sequence in range(10_000):
                if stop.is_set():
                    return
                text = f"writer {index} message {sequence}"
                try:
                    response = client.post(
                        "/api/v1/sessions/crash/context/messages",
                        json={"messages": [{"role": "user", "content": text}]},
                    )
                except httpx.HTTPError:
                    return  # the server is gone: this request was never acknowledged
                if response.status_code == 201:
                    with lock:
                        acknowledged[response.json()["events"][0]["version"]] = text

    server.start()
    try:
        created = httpx.post(f"{server.url}/api/v1/sessions", json={"id": "crash", "user_id": "alice"}, headers=headers)
        assert created.status_code == 201
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        server.kill()
    redis_client().flushall()

    assert len(acknowledged) >= 50, "the load ran long enough to mean something"
    session = AgentSession.objects.get(session_id="crash")
    rows = Event.objects.filter(session=session).values_list("version", "payload")
    stored = {version: decode(session, payload)["content"] for version, payload in rows}
    assert {version: stored.get(version) for version in acknowledged} == acknowledged
    assert sorted(stored) == list(range(1, session.head_version + 1)), "versions are gap-free"

    with running(gunicorn()) as restarted:
        context = httpx.get(f"{restarted.url}/api/v1/sessions/crash/context", headers=headers).json()
    newest = [acknowledged[v] for v in sorted(acknowledged)][-5:]
    assert context["source"] == "rebuilt"
    window = [m["content"] for m in context["messages"]]
    assert all(text in window for text in newest)
