"""Each API key has its own budget per minute: past it a 429 with Retry-After in the error shape; every answer
says the limit and what is left."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from conftest import World
from tenants_app.services import issue_api_key
from tests.api.catalogue import Route, calls, params_for
from tests.api.checks import assert_error_shape
from tests.api.recipes import AcmeObjects, real_call, send, why_no_path, why_not_callable
from tests.clients import AgentClient

pytestmark = pytest.mark.django_db

LIMIT = 3


def _fresh_key_client(world: World, name: str) -> APIClient:
    _, raw_key = issue_api_key(tenant=world.acme.tenant, name=name)
    client = AgentClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def _not_at_the_end_of_a_window() -> None:
    """Budgets are per clock minute: start well inside one so four requests share it."""
    left = 60 - time.time() % 60
    if left < 3:
        time.sleep(left + 0.1)


def _why_not(route: Route, method: str) -> str | None:
    return why_not_callable(route, method) if method != "GET" else why_no_path(route, method)


@pytest.mark.parametrize(("route", "method"), params_for(calls(), skip=_why_not))
def test_the_fourth_request_in_a_minute_is_a_429_with_retry_after(
    route: Route, method: str, objs: AcmeObjects, world: World
) -> None:
    call = real_call(route, method, objs)
    limited = _fresh_key_client(world, "limited")
    _not_at_the_end_of_a_window()
    with override_settings(API_RATE_LIMIT_PER_MINUTE=LIMIT):
        answers = [send(limited, method, call) for _ in range(LIMIT + 1)]

    assert [answer.status_code != 429 for answer in answers] == [True, True, True, False]
    assert [answer["X-RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]
    assert all(answer["X-RateLimit-Limit"] == str(LIMIT) for answer in answers)
    error = assert_error_shape(answers[-1], 429, "rate_limited")
    retry_after = int(answers[-1]["Retry-After"])
    assert 0 < retry_after <= 60
    assert error["details"]["retry_after"] == retry_after


def test_another_key_keeps_its_own_budget(objs: AcmeObjects, world: World) -> None:
    url = objs.session_url
    first, second = _fresh_key_client(world, "first"), _fresh_key_client(world, "second")
    _not_at_the_end_of_a_window()
    with override_settings(API_RATE_LIMIT_PER_MINUTE=LIMIT):
        spent = [first.get(url).status_code for _ in range(LIMIT + 1)]
        others = [second.get(url), world.outsider.client.get("/api/v1/whoami")]

    assert spent[-1] == 429
    assert [answer.status_code for answer in others] == [200, 200]
    assert others[0]["X-RateLimit-Remaining"] == str(LIMIT - 1)


def test_the_budget_is_shared_by_every_route_of_a_key(objs: AcmeObjects, world: World) -> None:
    session_url = objs.session_url
    client = _fresh_key_client(world, "roaming")
    _not_at_the_end_of_a_window()
    with override_settings(API_RATE_LIMIT_PER_MINUTE=LIMIT):
        answers = [
            client.get("/api/v1/whoami"),
            client.get(session_url),
            client.get(f"{session_url}/events"),
            client.get(f"{session_url}/state"),
        ]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
