"""Health of each layer (Postgres, pgvector, Redis, workers) for /readyz and the dashboard's overview."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import redis
from django.db import connection
from django_redis import get_redis_connection

WORKER_HEARTBEAT_KEY = "mem:worker:heartbeat"
# Beat sends a heartbeat every 15 s; missing three in a row means the workers (or beat) are gone.
WORKER_STALE_AFTER_SECONDS = 60


def redis_client() -> redis.Redis:
    client: redis.Redis = get_redis_connection("default")
    return client


@dataclass(frozen=True)
class LayerHealth:
    name: str
    ok: bool
    detail: str
    # Readiness depends on Postgres; the workers' absence only delays background work.
    required: bool = True
    # Not required, but the API is slower without it (it serves from Postgres): readiness says "degraded".
    degrades: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "required": self.required}


# How long a readiness probe waits for Postgres.
POSTGRES_PROBE_SECONDS = 2.0
_probe_lock = threading.Lock()
_probe: Future[list[LayerHealth]] | None = None
_prober = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-probe")


def check_postgres(timeout: float = POSTGRES_PROBE_SECONDS) -> list[LayerHealth]:
    """Postgres and pgvector, as answered within `timeout` seconds.

    A Postgres that hangs (stopped, or behind a network that drops packets) must not hold the caller: each
    probe would take a web thread for good, until none served anything. The question is asked on a thread of
    its own, one at a time; callers meanwhile wait on the same one, each for `timeout` at most.
    """
    global _probe
    with _probe_lock:
        if _probe is None or _probe.done():
            _probe = _prober.submit(_ask_postgres)
        probe = _probe
    try:
        return probe.result(timeout=timeout)
    except FutureTimeout:
        reason = f"no answer within {timeout:g} s"
        return [LayerHealth("postgres", False, reason), LayerHealth("pgvector", False, reason)]


def _ask_postgres() -> list[LayerHealth]:
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "select current_setting('server_version'), "
                "(select extversion from pg_extension where extname = 'vector')"
            )
            server_version, vector_version = cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"; the type names what went wrong
        reason = f"unreachable ({type(exc).__name__})"
        return [LayerHealth("postgres", False, reason), LayerHealth("pgvector", False, reason)]
    finally:
        connection.close()  # this thread's own connection: a new one per probe, never one left broken
    vector = (
        LayerHealth("pgvector", True, f"vector {vector_version}")
        if vector_version
        else LayerHealth("pgvector", False, "the vector extension is not installed (run migrations)")
    )
    return [LayerHealth("postgres", True, f"PostgreSQL {server_version}"), vector]


def check_redis() -> LayerHealth:
    """Redis is a cache: without it every request is served from Postgres, so it degrades, never blocks."""
    try:
        client = redis_client()
        started = time.perf_counter()
        client.ping()
        latency_ms = (time.perf_counter() - started) * 1000
        info = client.info("server")
    except Exception as exc:  # any client error means "not answering"
        return LayerHealth(
            "redis", False, f"unreachable ({type(exc).__name__}); serving from Postgres", required=False, degrades=True
        )
    return LayerHealth(
        "redis",
        True,
        f"Redis {info.get('redis_version', '?')}, ping {latency_ms:.2f} ms",
        required=False,
        degrades=True,
    )


def check_workers() -> LayerHealth:
    try:
        raw = redis_client().get(WORKER_HEARTBEAT_KEY)
    except Exception as exc:  # Redis down: we cannot tell
        return LayerHealth("workers", False, f"unknown: Redis unreachable ({type(exc).__name__})", required=False)
    if raw is None:
        return LayerHealth("workers", False, "no heartbeat yet (is a Celery worker and beat running?)", required=False)
    age = time.time() - float(raw)
    if age > WORKER_STALE_AFTER_SECONDS:
        return LayerHealth("workers", False, f"last heartbeat {age:.0f} s ago", required=False)
    return LayerHealth("workers", True, f"heartbeat {age:.0f} s ago", required=False)


def all_layers() -> list[LayerHealth]:
    return [*check_postgres(), check_redis(), check_workers()]


def readiness() -> tuple[int, dict[str, Any]]:
    """/readyz's status and body: ready when Postgres (with pgvector) answers; 503 naming the failing layer.

    Without Redis the API still serves every request from Postgres, only slower: the node stays ready (a load
    balancer that dropped every node because a cache is away would turn a slowdown into an outage), with
    status "degraded" and the layer named in `degraded`.
    """
    layers = [*check_postgres(), check_redis(), check_workers()]
    ready = all(layer.ok for layer in layers if layer.required)
    degraded = [layer.name for layer in layers if layer.degrades and not layer.ok]
    status = "unavailable" if not ready else "degraded" if degraded else "ready"
    body = {"status": status, "degraded": degraded, "layers": {layer.name: layer.as_dict() for layer in layers}}
    return (200 if ready else 503), body
