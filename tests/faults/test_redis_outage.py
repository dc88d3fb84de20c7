"""Redis stopped in the middle of a run: the API keeps serving from Postgres, readiness says "degraded" and names
Redis, no acknowledged write is lost; Redis back: the caches fill again.

The server runs against a Redis of this test's own (the suite's shared Redis is never stopped)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from checkpoints_app.models import Checkpoint
from conftest import World
from sessions_app.models import AgentSession, Event, EventType
from sessions_app.selectors import decode
from tests.faults.servers import throwaway_redis
from tests.load import WriteLoad, checkpoint_writer, message_writer
from tests.servers import running, web_server

pytestmark = pytest.mark.django_db(transaction=True)

SESSIONS = ["chat-a", "chat-b", "steps"]


def _context(client: httpx.Client, session_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/sessions/{session_id}/context")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _read_seconds(client: httpx.Client, reads: int = 20) -> float:
    """Median wall time of a context read (a figure for the report, never asserted: the machine is shared)."""
    times = []
    for _ in range(reads):
        started = time.perf_counter()
        assert client.get("/api/v1/sessions/chat-b/context").status_code == 200
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _idempotent_append(client: httpx.Client, key: str) -> httpx.Response:
    return client.post(
        "/api/v1/sessions/chat-a/context/messages",
        json={"messages": [{"role": "user", "content": f"once: {key}"}]},
        headers={"Idempotency-Key": key},
    )


def test_the_api_serves_through_a_redis_outage_and_the_caches_refill(world: World, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    with throwaway_redis(tmp_path / "redis") as cache:
        env = {
            "REDIS_URL": cache.url,
            "CELERY_BROKER_URL": cache.url,
            "REDIS_BREAKER_SECONDS": "1",
            # Snapshots are queued to Celery every few appends: the broker (this Redis) going away must not
            # turn a committed append into an error.
            "EVENT_SNAPSHOT_EVERY": "10",
        }
        with (
            running(web_server(workers=1, threads=8, env=env)) as server,
            httpx.Client(base_url=server.url, headers=headers, timeout=10) as client,
        ):
            for session_id in SESSIONS:
                assert client.post("/api/v1/sessions", json={"id": session_id, "user_id": "alice"}).status_code == 201
            load = WriteLoad(server.url, headers, timeout=10, survive_disconnects=True)
            load.start(
                message_writer(load, "chat-a", name="a0"),
                message_writer(load, "chat-a", name="a1"),
                message_writer(load, "chat-b", name="b0"),
                checkpoint_writer(load, "steps", name="s0", patches=True),
            )
            try:
                load.wait_for(40)
                assert client.get("/readyz").json()["status"] == "ready"
                assert _context(client, "chat-b")["source"] == "redis"
                before = load.acknowledged

                reads_with_redis = _read_seconds(client)
                cache.stop()
                outage_started = time.monotonic()
                load.wait_for_more(80)
                # Long enough for the breaker (1 s here) to let probes through while Redis is still away.
                time.sleep(max(0.0, 2.5 - (time.monotonic() - outage_started)))
                during = load.acknowledged - before
                reads_without_redis = _read_seconds(client)
                ready = client.get("/readyz")
                assert ready.status_code == 200
                assert ready.json()["status"] == "degraded" and ready.json()["degraded"] == ["redis"]
                with load.lock:
                    newest_b = max((v, t) for (s, v), t in load.messages.items() if s == "chat-b")
                window = _context(client, "chat-b")
                assert window["source"] == "postgres"
                assert window["version"] >= newest_b[0] and newest_b[1] in [m["content"] for m in window["messages"]]
                # Idempotency falls back to the key stored with the events: a retry appends nothing more.
                first, retry = _idempotent_append(client, "outage-1"), _idempotent_append(client, "outage-1")
                assert (first.status_code, retry.status_code) == (201, 201)
                assert retry.json()["events"] == first.json()["events"]
                texts = [m["content"] for m in _context(client, "chat-a")["messages"]]
                assert texts.count("once: outage-1") == 1
                outage_seconds = time.monotonic() - outage_started

                cache.start()
                deadline = time.monotonic() + 15
                while client.get("/readyz").json()["status"] != "ready" and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert client.get("/readyz").json()["status"] == "ready"
                load.wait_for_more(40)
            finally:
                load.finish()

            # The caches fill again: the window is rebuilt into Redis once, then served from it.
            assert _context(client, "chat-b")["source"] == "rebuilt"
            refilled = redis.Redis.from_url(cache.url)
            assert refilled.exists("mem:apikeys:epoch")
            assert any(refilled.scan_iter(match="mem:rl:*")), "rate counting resumed"
            assert any(refilled.scan_iter(match="mem:ctx:*")), "hot context cached again"
            refilled.close()

    failures = {status: n for status, n in load.statuses.items() if status != 201}
    assert failures == {}, "every write was answered, none refused, through the outage"
    stored: dict[tuple[str, int], str] = {}
    for session in AgentSession.objects.filter(session_id__in=SESSIONS):
        versions = list(Event.objects.filter(session=session).order_by("version").values_list("version", flat=True))
        assert versions == list(range(1, session.head_version + 1)), f"{session.session_id}: gap in versions"
        for version, payload in Event.objects.filter(session=session, type=EventType.MESSAGE_ADDED).values_list(
            "version", "payload"
        ):
            stored[(session.session_id, version)] = decode(session, payload)["content"]
    assert {key: stored.get(key) for key in load.messages} == load.messages
    assert Checkpoint.objects.filter(pk__in=list(load.checkpoints)).count() == len(load.checkpoints)
    print(
        f"\nFAULT redis outage: acknowledged {len(load.messages)} appends + {len(load.checkpoints)} checkpoints "
        f"({during} while Redis was down for {outage_seconds:.1f} s); found "
        f"{sum(key in stored for key in load.messages)} + {len(load.checkpoints)}; answers {dict(load.statuses)}; "
        f"context read median {reads_with_redis * 1000:.1f} ms with Redis, {reads_without_redis * 1000:.1f} ms "
        "without (under the writers' load)"
    )
