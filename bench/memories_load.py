"""The memories suite's load scenarios, run in the load generator process (`python -m bench.memories_load`).

It reuses bench/load.py's lean keep-alive client and recorder. Request bodies are encoded once, before the
clock starts: a 384-dimension vector is several kilobytes of JSON, and encoding it per request would make the
load generator, not the service, the thing being measured.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from bench.load import Client, Recorder, Run, Setup, main

MEMORIES = "/api/v1/memories"


def _encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


async def call_raw(
    rec: Recorder, name: str, client: Client, path: str, raw: bytes, *, expect: tuple[int, ...]
) -> bytes | None:
    """POST pre-encoded JSON; counted like `Recorder.call` (inside the window, expected status only)."""
    started = time.perf_counter()
    status, payload = await client.request("POST", path, raw)
    finished = time.perf_counter()
    if status not in expect:
        rec.errors[name] = rec.errors.get(name, 0) + 1
        rec.error_examples.setdefault(name, f"{status}: {payload[:300].decode('utf-8', 'replace')}")
        return None
    if started >= rec.warm_until and finished <= rec.deadline:
        rec.samples.setdefault(name, []).append(finished - started)
    return payload


# --- setup: each client's bodies, encoded once -------------------------------------------------------------


async def _search_bodies(rec: Recorder, client: Client, index: int, params: dict[str, Any]) -> list[bytes]:
    """params: queries = [[user_id, vector], ...], scopes, k. Every client walks all queries from its own offset."""
    queries = params["queries"]
    bodies = []
    for user_id, vector in queries:
        body: dict[str, Any] = {"embedding": vector, "scopes": params["scopes"], "k": int(params.get("k", 10))}
        if user_id:
            body["user_id"] = user_id
        bodies.append(_encode(body))
    offset = (index * len(bodies)) // max(1, int(params.get("clients", 1)))
    return bodies[offset:] + bodies[:offset]


async def _single_bodies(rec: Recorder, client: Client, index: int, params: dict[str, Any]) -> list[bytes]:
    """params: vectors (a pool), user_prefix. Each client writes user-scope memories of its own user."""
    user = f"{params['user_prefix']}{index}"
    return [
        _encode({"scope": "user", "user_id": user, "content": f"bench write {index}-{n}", "embedding": vector})
        for n, vector in enumerate(params["vectors"])
    ]


async def _batch_bodies(rec: Recorder, client: Client, index: int, params: dict[str, Any]) -> list[bytes]:
    """params: vectors, batch, user_prefix. A few distinct batches, rotated."""
    user, vectors, size = f"{params['user_prefix']}{index}", params["vectors"], int(params["batch"])
    bodies = []
    for start in range(0, len(vectors), size):
        items = [
            {"scope": "user", "user_id": user, "content": f"bench batch {index}-{start + n}", "embedding": vector}
            for n, vector in enumerate(vectors[start : start + size])
        ]
        if len(items) == size:
            bodies.append(_encode({"memories": items}))
    return bodies


# --- runs ------------------------------------------------------------------------------------------------


async def run_search(rec: Recorder, client: Client, index: int, bodies: Any, params: dict[str, Any]) -> None:
    i = 0
    while rec.running() and i < params["max_requests"]:
        payload = await call_raw(rec, "search", client, f"{MEMORIES}/search", bodies[i % len(bodies)], expect=(200,))
        if payload is not None and len(json.loads(payload)["results"]) < int(params.get("k", 10)):
            rec.note("short_results")
        i += 1


async def run_single_writes(rec: Recorder, client: Client, index: int, bodies: Any, params: dict[str, Any]) -> None:
    i = 0
    while rec.running() and i < params["max_requests"]:
        await call_raw(rec, "write", client, MEMORIES, bodies[i % len(bodies)], expect=(201,))
        i += 1


async def run_batch_writes(rec: Recorder, client: Client, index: int, bodies: Any, params: dict[str, Any]) -> None:
    i = 0
    while rec.running() and i < params["max_requests"]:
        await call_raw(rec, "batch_write", client, f"{MEMORIES}/batch", bodies[i % len(bodies)], expect=(201,))
        i += 1


SCENARIOS: dict[str, tuple[Setup, Run]] = {
    "memory_search": (_search_bodies, run_search),
    "memory_single_writes": (_single_bodies, run_single_writes),
    "memory_batch_writes": (_batch_bodies, run_batch_writes),
}


if __name__ == "__main__":
    sys.exit(main(SCENARIOS))
