"""The circuit breaker in front of Redis: a dead or hung Redis costs one quick failure per interval, and a
Redis that comes back is used again through fresh connections."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from memory_admin.embedded import LOOPBACK
from memory_admin.redis_guard import GuardedConnection, breaker_for, queue_task
from tests.faults.servers import throwaway_redis


class SilentServer:
    """Accepts connections and never answers: a hung Redis. Counts the connections made to it."""

    def __init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


def guarded_client(port: int, *, timeout: float = 0.2) -> redis.Redis:
    pool = redis.ConnectionPool(
        host=LOOPBACK,
        port=port,
        connection_class=GuardedConnection,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )
    return redis.Redis(connection_pool=pool)


@pytest.fixture
def short_breaker(settings: Any) -> None:
    settings.REDIS_BREAKER_SECONDS = 0.5


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_hung_redis_is_waited_on_once_then_skipped_until_the_interval_ends(
    short_breaker: None, silent: SilentServer
) -> None:
    client = guarded_client(silent.port)
    with pytest.raises(redis.RedisError):  # a timeout, then its one retry is refused at once
        client.get("k")
    for _ in range(50):
        with pytest.raises(redis.ConnectionError):
            client.get("k")
    assert len(silent.accepted) == 1, "while open, the breaker touches no socket"
    assert breaker_for(LOOPBACK, silent.port).blocked()


def test_after_the_interval_one_caller_probes_and_a_failed_probe_opens_the_breaker_again(
    settings: Any, silent: SilentServer
) -> None:
    settings.REDIS_BREAKER_SECONDS = 0.05
    client = guarded_client(silent.port)
    with pytest.raises(redis.RedisError):
        client.get("k")
    breaker = breaker_for(LOOPBACK, silent.port)
    while breaker.blocked():
        pass
    settings.REDIS_BREAKER_SECONDS = 30
    with pytest.raises(redis.RedisError):
        client.get("k")
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    assert len(silent.accepted) == 2, "one probe after the interval, then skipped again"


def test_a_refused_connection_opens_the_breaker_and_a_restarted_redis_is_used_again(
    short_breaker: None, tmp_path: Path
) -> None:
    with throwaway_redis(tmp_path / "redis") as server:
        client = guarded_client(server.port, timeout=0.5)
        client.set("k", "before")
        breaker = breaker_for(LOOPBACK, server.port)

        server.stop()
        with pytest.raises(redis.ConnectionError):
            client.get("k")
        assert breaker.blocked()

        server.start()
        while breaker.blocked():
            time.sleep(0.02)
        # The pooled socket was made before the failure: it is dropped, not reused.
        assert client.set("k", "after") and client.get("k") == b"after"
        assert not breaker.tripped


class ClosingServer(SilentServer):
    """Accepts connections and closes them at once: a broker that is there but broken."""

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)
            conn.close()


def test_a_task_for_a_down_broker_is_not_queued_and_the_next_ones_skip_the_broker(settings: Any) -> None:
    broker = ClosingServer()
    try:
        settings.CELERY_BROKER_URL = f"redis://{LOOPBACK}:{broker.port}/0"
        app = Celery("fault-tests", broker=settings.CELERY_BROKER_URL, set_as_current=False)

        @app.task(name="fault-tests.noop")
        def noop() -> None:
            return None

        assert queue_task(noop) is False
        tried = len(broker.accepted)
        assert tried == 1 and breaker_for(LOOPBACK, broker.port).blocked()
        assert queue_task(noop) is False
        assert len(broker.accepted) == tried, "skipped without a connection while the breaker is open"
    finally:
        broker.close()
