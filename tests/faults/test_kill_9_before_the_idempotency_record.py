"""`kill -9` of the web server after a memory create committed and before the answer's Idempotency-Key record
reached Redis. The client got no answer; while the killed request's claim lasts its retry is a 409 (a duplicate
may still be running), and once the claim is gone (it expires after IN_FLIGHT_SECONDS; Redis may lose it sooner)
the retry gets the memory that was stored instead of storing a second one.

The create is held on a table lock until Redis writes are paused, so that its INSERT commits and the record's
SET waits. The server runs against a Redis of this test's own (the suite's shared Redis is never paused)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.db import connection, transaction

from conftest import World
from memories_app.models import Memory
from memory_admin.embedded import wait_until
from tests.concurrency import wait_until_blocked
from tests.faults.servers import throwaway_redis
from tests.servers import running, web_server

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"scope": "user", "user_id": "alice", "content": "Alice pays by card."}


def _create(url: str, headers: dict[str, str]) -> httpx.Response | httpx.HTTPError:
    try:
        return httpx.post(f"{url}/api/v1/memories", json=BODY, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        return exc


def test_a_create_retried_after_a_kill_9_between_its_commit_and_its_record_stores_once(
    world: World, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}", "Idempotency-Key": "crash-1"}
    with throwaway_redis(tmp_path / "redis") as cache:
        # The record's SET waits for the pause to end instead of giving up after a second.
        env = {"REDIS_URL": cache.url, "CELERY_BROKER_URL": cache.url, "REDIS_SOCKET_TIMEOUT_SECONDS": "60"}
        store = redis.Redis.from_url(cache.url)
        server = web_server(workers=1, threads=2, env=env)
        answers: list[Any] = []
        server.start()
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {Memory._meta.db_table} IN SHARE MODE")
                first = threading.Thread(target=lambda: answers.append(_create(server.url, headers)))
                first.start()
                wait_until_blocked(Memory._meta.db_table, what="the create")  # its key is claimed by now
                store.execute_command("CLIENT", "PAUSE", "60000", "WRITE")
            wait_until(Memory.objects.filter(content=BODY["content"]).exists, timeout=30, what="the create's commit")
            server.kill()
            first.join(30)
        finally:
            server.kill()
            store.execute_command("CLIENT", "UNPAUSE")
        stored = Memory.objects.get(content=BODY["content"])
        assert len(answers) == 1 and isinstance(answers[0], httpx.HTTPError), answers

        with running(web_server(workers=1, threads=2, env=env)) as restarted:
            while_claimed = _create(restarted.url, headers)
            for claim in store.scan_iter(match="mem:idem:*"):
                store.delete(claim)  # as when the claim expires
            retry = _create(restarted.url, headers)

    assert isinstance(while_claimed, httpx.Response) and while_claimed.status_code == 409, while_claimed
    assert isinstance(retry, httpx.Response) and retry.status_code == 201, retry
    assert retry.json()["id"] == str(stored.pk)
    assert Memory.objects.filter(content=BODY["content"]).count() == 1
