"""Agents racing to create the same client-chosen session id, each on its own database connection: one
session, one 201, and every other request answered as a retry (200, the same session) or, for another
user, a 409 — never a 500 or a second row."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from conftest import World
from sessions_app.models import AgentSession
from tests.clients import AgentClient
from tests.concurrency import at_once

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def _race(world: World, body_of: Any) -> list[Any]:
    def create(index: int) -> Any:
        client = AgentClient()  # one per thread: test clients are not meant to be shared
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.acme.raw_key}")
        return client.post("/api/v1/sessions", body_of(index), format="json")

    return at_once(*(functools.partial(create, index) for index in range(THREADS)))


def test_concurrent_creates_of_one_id_make_one_session_and_answer_the_rest_with_it(world: World) -> None:
    responses = _race(world, lambda index: {"id": "raced", "user_id": "alice", "metadata": {"channel": "chat"}})

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * (THREADS - 1) + [201]
    bodies = {(body["id"], body["created_at"], body["metadata"]["channel"]) for body in (r.json() for r in responses)}
    assert len(bodies) == 1
    assert AgentSession.objects.filter(tenant=world.acme.tenant, session_id="raced").count() == 1


def test_concurrent_creates_of_one_id_for_different_users_leave_it_to_the_first(world: World) -> None:
    responses = _race(world, lambda index: {"id": "contested", "user_id": f"user-{index}"})

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (THREADS - 1)
    winner = next(response.json()["user_id"] for response in responses if response.status_code == 201)
    assert list(AgentSession.objects.filter(session_id="contested").values_list("user_id", flat=True)) == [winner]
