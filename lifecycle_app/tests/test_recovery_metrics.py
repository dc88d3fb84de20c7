"""Recoveries are counted by kind on /metrics: a context rebuilt from Postgres after Redis lost it, state
replayed from events, an agent resuming from its latest checkpoint; and each checkpoint save is timed."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from conftest import World
from memory_admin.health import redis_client

pytestmark = pytest.mark.django_db


def scraped(series: str) -> float:
    text = Client().get("/metrics").content.decode()
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_each_kind_of_recovery_and_each_checkpoint_save_is_counted(
    world: World, django_capture_on_commit_callbacks
) -> None:
    kinds = ("context_rebuild", "event_replay", "checkpoint")
    before = {kind: scraped(f'memory_recoveries_total{{kind="{kind}"}}') for kind in kinds}
    saves_before = scraped("memory_checkpoint_save_seconds_count")
    agent = world.acme.client
    session = "/api/v1/sessions/recover-me"
    with django_capture_on_commit_callbacks(execute=True):
        assert agent.post("/api/v1/sessions", {"id": "recover-me", "user_id": "u-1"}, format="json").status_code == 201
        events = [{"type": "NODE_TRANSITION", "payload": {"node": f"n{n}"}} for n in range(5)]
        assert agent.post(f"{session}/events", {"events": events}, format="json").status_code == 201
        for step in range(2):
            saved = agent.post(f"{session}/checkpoints", {"node_id": "n", "state": {"step": step}}, format="json")
            assert saved.status_code == 201

    redis_client().flushdb()  # Redis lost the hot context
    assert agent.get(f"{session}/context").status_code == 200
    assert agent.get(f"{session}/state", {"version": 3}).status_code == 200  # no snapshot there: a replay
    assert agent.get(f"{session}/checkpoints/latest").status_code == 200

    for kind in kinds:
        assert scraped(f'memory_recoveries_total{{kind="{kind}"}}') >= before[kind] + 1, kind
    assert scraped("memory_checkpoint_save_seconds_count") == saves_before + 2
