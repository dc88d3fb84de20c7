"""Stored JSON comes back exactly, whichever lane serves the read: an integer beyond 64 bits is accepted by
Django's parser and stored exactly by Postgres, but orjson (which the hot lane and the hot selectors use)
reads it as a rounded float and refuses to write it. Each read below once answered a rounded number or a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

from conftest import World
from memory_admin.health import redis_client
from tests.clients import served_by_hot_lane

BIG = 2**70 + 1  # a float cannot hold it: rounding shows


def _session(world: World, session_id: str) -> str:
    response = world.acme.client.post("/api/v1/sessions", {"id": session_id, "user_id": "u-big"}, format="json")
    assert response.status_code == 201, response.content
    return f"/api/v1/sessions/{session_id}"


def test_a_context_window_holding_a_huge_integer_is_read_exactly_from_redis_and_rebuilt_after_a_flush(
    world: World,
) -> None:
    base = _session(world, "big-context")
    message = {"role": "tool", "content": "balance", "cents": BIG}
    assert world.acme.client.post(f"{base}/context/messages", {"messages": [message]}, format="json").status_code == 201

    cached = world.acme.client.get(f"{base}/context")
    redis_client().flushdb()
    rebuilt = world.acme.client.get(f"{base}/context")

    assert served_by_hot_lane(cached) and served_by_hot_lane(rebuilt)
    assert cached.status_code == rebuilt.status_code == 200, rebuilt.content
    assert rebuilt.json()["source"] == "rebuilt"
    assert cached.json()["messages"] == rebuilt.json()["messages"] == [message]


def test_an_events_payload_and_the_state_it_builds_keep_a_huge_integer(world: World) -> None:
    base = _session(world, "big-events")
    event = {"type": "STATE_PATCHED", "payload": {"patch": [{"op": "add", "path": "/total", "value": BIG}]}}
    assert world.acme.client.post(f"{base}/events", event, format="json").status_code == 201

    events = world.acme.client.get(f"{base}/events").json()["results"]
    state = world.acme.client.get(f"{base}/state").json()["state"]

    assert events[0]["payload"]["patch"][0]["value"] == BIG
    assert state["data"]["total"] == BIG


def test_a_checkpoints_state_and_metadata_keep_a_huge_integer(world: World) -> None:
    base = _session(world, "big-checkpoint")
    body = {"node_id": "ledger", "sequence": 1, "state": {"total": BIG}, "metadata": {"run": BIG}}
    assert world.acme.client.post(f"{base}/checkpoints", body, format="json").status_code == 201

    latest = world.acme.client.get(f"{base}/checkpoints/latest")

    assert served_by_hot_lane(latest) and latest.status_code == 200, latest.content
    assert latest.json()["state"] == {"total": BIG} and latest.json()["metadata"] == {"run": BIG}


def _langgraph_checkpoint(metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "op": "checkpoint",
        "checkpoint_id": "1f0-0001",
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"total": BIG}},
        "metadata": metadata,
        "blobs": [{"channel": "total", "version": str(BIG), "type": "json", "blob": base64.b64encode(b"1").decode()}],
    }


def test_a_langgraph_checkpoint_keeps_a_huge_integer_in_its_checkpoint_and_metadata_in_either_lane(
    world: World,
) -> None:
    thread = "/api/v1/langgraph/threads/big-thread"
    saved = world.acme.client.post(
        f"{thread}/saves", {"ops": [_langgraph_checkpoint({"step": BIG})], "user_id": "u-big"}, format="json"
    )
    assert saved.status_code == 200, saved.content

    by_lane = world.acme.client.get(f"{thread}/checkpoints", {"limit": "1"})
    by_django = world.acme.client.get(f"{thread}/checkpoints", {"limit": "1", "filter": json.dumps({"step": BIG})})

    assert served_by_hot_lane(by_lane) and not served_by_hot_lane(by_django)
    for page in (by_lane, by_django):
        assert page.status_code == 200, page.content
        [found] = page.json()["results"]
        assert found["metadata"] == {"step": BIG}
        assert found["checkpoint"]["channel_versions"] == {"total": BIG}
