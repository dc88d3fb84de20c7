"""Concurrent appends on real connections: versions stay unique and gap-free, stale expectations lose cleanly."""

from __future__ import annotations

import functools
from collections import Counter

import pytest
from rest_framework.test import APIClient

from conftest import World
from sessions_app.models import Event
from sessions_app.tests.helpers import create_session
from tests.clients import AgentClient
from tests.concurrency import at_once

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 8


def _client(world: World) -> APIClient:
    client = AgentClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.acme.raw_key}")
    return client


def test_racing_appends_with_the_same_expected_version_have_exactly_one_winner(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    statuses: list[int] = []

    def append(index: int) -> None:
        body = {"type": "NODE_TRANSITION", "payload": {"node": f"n{index}"}, "expected_version": 0}
        statuses.append(_client(world).post("/api/v1/sessions/s/events", body, format="json").status_code)

    at_once(*(functools.partial(append, i) for i in range(WRITERS)))

    assert Counter(statuses) == {201: 1, 409: WRITERS - 1}
    assert list(Event.objects.values_list("version", flat=True)) == [1]


def test_racing_appends_without_expectations_all_land_with_gap_free_versions(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    statuses: list[int] = []

    def append(index: int) -> None:
        events = [{"type": "NODE_TRANSITION", "payload": {"node": f"{index}-{j}"}} for j in range(3)]
        statuses.append(_client(world).post("/api/v1/sessions/s/events", {"events": events}, format="json").status_code)

    at_once(*(functools.partial(append, i) for i in range(WRITERS)))

    versions = sorted(Event.objects.values_list("version", flat=True))
    assert statuses == [201] * WRITERS
    assert versions == list(range(1, 3 * WRITERS + 1))
    batches = Counter(
        node.split("-")[0] for node in (_client(world).get("/api/v1/sessions/s/state").json()["state"]["node_history"])
    )
    # Each batch is contiguous: its three events got consecutive versions.
    events = _client(world).get("/api/v1/sessions/s/events", {"limit": 100}).json()["results"]
    owners = [e["payload"]["node"].split("-")[0] for e in events]
    assert all(owners[i] == owners[i + 1] == owners[i + 2] for i in range(0, len(owners), 3))
    assert sum(batches.values()) == 3 * WRITERS
