"""Prometheus sees every checkpoint save's latency, and each read of the latest checkpoint as a recovery."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from conftest import World

from .helpers import acme_session, saved, url

pytestmark = pytest.mark.django_db


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_each_save_is_observed_in_the_save_latency_histogram(world: World) -> None:
    session = acme_session(world)
    before = sample("memory_checkpoint_save_seconds_count")

    saved(world.acme.client, session, state={"step": 1})
    saved(world.acme.client, session, state={"step": 2})

    assert sample("memory_checkpoint_save_seconds_count") == before + 2


def test_reading_the_latest_checkpoint_counts_as_a_checkpoint_recovery(world: World) -> None:
    session = acme_session(world)
    saved(world.acme.client, session, state={"step": 1})
    before = sample("memory_recoveries_total", {"kind": "checkpoint"})

    assert world.acme.client.get(url(session, "/latest")).status_code == 200
    assert world.acme.client.get(url(session, "/by-sequence/1")).status_code == 200

    assert sample("memory_recoveries_total", {"kind": "checkpoint"}) == before + 1
