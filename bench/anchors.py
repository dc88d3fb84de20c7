"""Anchors measured in the same run against the same Redis and Postgres the service uses.

- Redis through redis-py: RPUSH of one message and LRANGE of a 50-message window, one client in a row
  (latency) and 8 threads (throughput).
- Postgres through psycopg: single-row autocommit INSERTs into a copy of the events table
  (`CREATE TABLE ... (LIKE sessions_app_event INCLUDING ALL)`), 32 connections at once, one per "session";
  and the same SQL the API runs per append (UPDATE the session row RETURNING, INSERT the event, COMMIT),
  so the gap between raw SQL and the API over HTTP can be split into database and application time.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import redis

from bench.load import message, summarize, tool_event

ANCHOR_EVENTS = "bench_anchor_event"
ANCHOR_SESSIONS = "bench_anchor_session"


def _sequential(operation: Callable[[int], object], count: int, seconds: float) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    for i in range(count):
        started = time.perf_counter()
        operation(i)
        samples.append(time.perf_counter() - started)
        if time.perf_counter() > deadline:
            break
    return samples


def _threads(
    make_worker: Callable[[int], Callable[[int], object]], threads: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """Run `threads` closed loops for warmup+seconds; latencies and rate of what ran after the warm-up."""
    results: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    start = time.perf_counter() + 0.2
    warm_until, deadline = start + warmup, start + warmup + seconds

    def body(index: int) -> None:
        try:
            operation = make_worker(index)
            while time.perf_counter() < start:
                time.sleep(0.001)
            i = 0
            while i < 10_000_000:
                began = time.perf_counter()
                if began >= deadline:
                    break
                operation(i)
                ended = time.perf_counter()
                if began >= warm_until and ended <= deadline:
                    results[index].append(ended - began)
                i += 1
        except Exception as exc:  # reported, not raised: a thread has nowhere to raise to
            errors.append(repr(exc))

    workers = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=warmup + seconds + 60)
    samples = [sample for per_thread in results for sample in per_thread]
    if not samples:
        raise RuntimeError(f"anchor produced no samples: {errors[:3]}")
    return {**summarize(samples), "per_second": len(samples) / seconds, "errors": errors[:3]}


def redis_anchors(url: str, *, seconds: float, warmup: float) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    key = f"bench:anchor:{uuid.uuid4().hex}"
    encoded = [json.dumps(message(i), separators=(",", ":")) for i in range(50)]
    try:
        client.rpush(key, *encoded)
        count = 100_000
        # Warm the connection, then measure one client in a row.
        _sequential(lambda i: client.rpush(key + ":w", encoded[i % 50]), 200, warmup)
        rpush = _sequential(lambda i: client.rpush(key + ":push", encoded[i % 50]), count, seconds)
        lrange = _sequential(lambda i: client.lrange(key, -50, -1), count, seconds)

        def pusher(index: int) -> Callable[[int], object]:
            own = redis.Redis.from_url(url)
            return lambda i: own.rpush(f"{key}:push:{index}", encoded[i % 50])

        def reader(index: int) -> Callable[[int], object]:
            own = redis.Redis.from_url(url)
            return lambda i: own.lrange(key, -50, -1)

        return {
            "rpush": {**summarize(rpush), "per_second": len(rpush) / sum(rpush)},
            "lrange50": {**summarize(lrange), "per_second": len(lrange) / sum(lrange)},
            "rpush_8_threads": _threads(pusher, 8, seconds, warmup),
            "lrange50_8_threads": _threads(reader, 8, seconds, warmup),
        }
    finally:
        client.delete(key, key + ":w", key + ":push", *(f"{key}:push:{i}" for i in range(8)))
        client.close()


def _prepare_tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {ANCHOR_EVENTS}, {ANCHOR_SESSIONS}")
        conn.execute(f"CREATE TABLE {ANCHOR_EVENTS} (LIKE sessions_app_event INCLUDING ALL)")
        conn.execute(
            f"CREATE TABLE {ANCHOR_SESSIONS} "
            "(id uuid PRIMARY KEY, head_version bigint NOT NULL, last_activity_at timestamptz NOT NULL)"
        )


def postgres_anchors(url: str, *, connections: int, seconds: float, warmup: float) -> dict[str, Any]:
    _prepare_tables(url)
    payload = b"J" + json.dumps(tool_event(0)["payload"], separators=(",", ":")).encode()
    # Table names are constants of this module, not input.
    columns = "(session_id, version, type, payload, schema_version, created_at)"
    insert = f"INSERT INTO {ANCHOR_EVENTS} {columns} VALUES (%s, %s, 'TOOL_EXECUTED', %s, 1, now())"  # noqa: S608

    opened: list[psycopg.Connection[Any]] = []

    def raw_insert(index: int) -> Callable[[int], object]:
        conn = psycopg.connect(url, autocommit=True)
        opened.append(conn)
        session = uuid.uuid4()
        return lambda i: conn.execute(insert, (session, i + 1, payload))

    def app_shaped(index: int) -> Callable[[int], object]:
        conn = psycopg.connect(url)
        opened.append(conn)
        session = uuid.uuid4()
        conn.execute(f"INSERT INTO {ANCHOR_SESSIONS} VALUES (%s, 0, now())", (session,))  # noqa: S608
        conn.commit()

        def append(i: int) -> None:
            with conn.transaction():
                row = conn.execute(
                    f"UPDATE {ANCHOR_SESSIONS} SET head_version = head_version + 1, last_activity_at = now() "  # noqa: S608
                    "WHERE id = %s RETURNING head_version",
                    (session,),
                ).fetchone()
                assert row is not None
                conn.execute(insert, (session, row[0] + 1_000_000_000, payload))

        return append

    try:
        return {
            "insert": _threads(raw_insert, connections, seconds, warmup),
            "app_shaped_txn": _threads(app_shaped, connections, seconds, warmup),
            "settings": _pg_settings(url),
        }
    finally:
        for conn in opened:
            conn.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {ANCHOR_EVENTS}, {ANCHOR_SESSIONS}")


def _pg_settings(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'server_version')"
        ).fetchall()
    return dict(rows)
