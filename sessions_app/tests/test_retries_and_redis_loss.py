"""Retried writes have exactly one effect — even when Redis lost its idempotency records in between."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import World
from memory_admin.health import redis_client
from sessions_app.models import Event
from sessions_app.tests.helpers import create_session

pytestmark = pytest.mark.django_db

MESSAGES = {"messages": [{"role": "user", "content": "pay the invoice"}]}


def _post(world: World, key: str, body: dict[str, Any]) -> Any:
    return world.acme.client.post("/api/v1/sessions/s/context/messages", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_with_the_same_key_returns_the_first_response_and_appends_once(world: World) -> None:
    create_session(world.acme.client, "s", "alice")

    first = _post(world, "retry-1", MESSAGES)
    retry = _post(world, "retry-1", MESSAGES)

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert Event.objects.count() == 1


def test_a_retry_after_redis_was_flushed_still_appends_once(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    first = _post(world, "retry-2", MESSAGES)

    redis_client().flushall()
    retry = _post(world, "retry-2", MESSAGES)

    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert Event.objects.count() == 1


def test_the_same_key_with_another_body_is_a_422(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    _post(world, "retry-3", MESSAGES)

    response = _post(world, "retry-3", {"messages": [{"role": "user", "content": "something else"}]})

    assert response.status_code == 422
    assert Event.objects.count() == 1


def test_keys_are_per_endpoint_so_one_key_on_two_sessions_appends_twice(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    create_session(world.acme.client, "t", "alice")

    world.acme.client.post("/api/v1/sessions/s/context/messages", MESSAGES, format="json", HTTP_IDEMPOTENCY_KEY="k")
    world.acme.client.post("/api/v1/sessions/t/context/messages", MESSAGES, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert Event.objects.count() == 2


def test_a_failed_request_does_not_burn_its_key(world: World) -> None:
    create_session(world.acme.client, "s", "alice")

    refused = _post(world, "retry-4", {"messages": [{"role": "nobody", "content": "x"}]})
    fixed = _post(world, "retry-4", MESSAGES)

    assert refused.status_code == 400
    assert fixed.status_code == 201
