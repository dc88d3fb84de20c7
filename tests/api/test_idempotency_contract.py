"""Every write honours Idempotency-Key: a retry replays the first answer with no second effect, the same key with
another body is a 422, a duplicate still in flight is a 409, and a key never crosses tenants or survives a failure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from conftest import World
from memory_admin.api import idempotency
from tests.api.catalogue import WRITE_METHODS, Route, calls, params_for
from tests.api.checks import assert_error_shape, replaced, stored_state, string_paths
from tests.api.recipes import UPSERTS, AcmeObjects, Call, real_call, send, why_not_callable

pytestmark = pytest.mark.django_db

WRITE_CALLS = calls(methods=WRITE_METHODS)
DELETE_CALLS = calls(methods=("DELETE",))
KEY = "retry-7f3a9c"


def _keyed(key: str = KEY) -> dict[str, Any]:
    return {"HTTP_IDEMPOTENCY_KEY": key}


def _other_body(body: dict[str, Any]) -> dict[str, Any]:
    """The same request with one text changed: a different body by meaning, not just by spacing."""
    first = next(iter(string_paths(body)))
    changed: dict[str, Any] = replaced(body, first, lambda text: text + " (changed)")
    return changed


@pytest.mark.parametrize(("route", "method"), params_for(WRITE_CALLS + DELETE_CALLS))
def test_every_write_handler_is_decorated_with_idempotent(route: Route, method: str) -> None:
    assert getattr(route.handler(method), "idempotent", False) is True


@pytest.mark.parametrize(("route", "method"), params_for(WRITE_CALLS + DELETE_CALLS, skip=why_not_callable))
def test_a_retry_with_the_same_key_replays_the_first_answer_without_a_second_effect(
    route: Route, method: str, objs: AcmeObjects
) -> None:
    # A delete too: without the key, its retry after a success is a 404 (or a count of 0), which the client
    # cannot tell from someone else's delete.
    call = real_call(route, method, objs)
    first = send(objs.client, method, call, **_keyed())
    assert 200 <= first.status_code < 300, first.content[:300]
    after_first = stored_state()

    retry = send(objs.client, method, call, **_keyed())

    assert retry.status_code == first.status_code
    assert (retry.json() if retry.content else None) == (first.json() if first.content else None)
    assert retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert stored_state() == after_first


@pytest.mark.parametrize(("route", "method"), params_for(WRITE_CALLS, skip=why_not_callable))
def test_the_same_key_with_a_different_body_is_a_422_and_stores_nothing(
    route: Route, method: str, objs: AcmeObjects
) -> None:
    call = real_call(route, method, objs)
    assert 200 <= send(objs.client, method, call, **_keyed()).status_code < 300
    assert call.body is not None
    after_first = stored_state()

    other = send(objs.client, method, Call(call.url, _other_body(call.body), call.query), **_keyed())

    assert_error_shape(other, 422, "unprocessable")
    assert stored_state() == after_first


def _claim_in_flight(objs: AcmeObjects, method: str, call: Call, key: str) -> None:
    """Claim the key exactly as the first of two concurrent requests does before its handler runs."""
    raw = json.dumps(call.body).encode()
    factory: Any = APIRequestFactory()
    django_request = factory.generic(method, call.url, raw, content_type="application/json")
    claim = idempotency._claim(objs.agent.tenant.pk, Request(django_request), key)
    assert isinstance(claim, idempotency.Claim)


@pytest.mark.parametrize(("route", "method"), params_for(WRITE_CALLS, skip=why_not_callable))
def test_a_duplicate_of_a_request_still_in_flight_is_a_409_saying_when_to_retry_and_stores_nothing(
    route: Route, method: str, objs: AcmeObjects
) -> None:
    call = real_call(route, method, objs)
    _claim_in_flight(objs, method, call, KEY)
    before = stored_state()

    duplicate = send(objs.client, method, call, **_keyed())

    error = assert_error_shape(duplicate, 409, "conflict")
    assert error["details"].get("in_flight") is True
    # The same request with the same key gets the first one's answer once it is done: a client waits, rather
    # than give up (and send it again under a new key, which would write twice).
    assert duplicate["Retry-After"] == "1"
    assert stored_state() == before


@pytest.mark.parametrize(("route", "method"), params_for(WRITE_CALLS, skip=why_not_callable))
def test_a_failed_request_does_not_use_up_its_key(route: Route, method: str, objs: AcmeObjects) -> None:
    call = real_call(route, method, objs)
    assert call.body is not None
    failed = send(objs.client, method, Call(call.url, {**call.body, "zz_not_a_field": 1}, call.query), **_keyed())
    assert_error_shape(failed)

    retried = send(objs.client, method, call, **_keyed())

    assert 200 <= retried.status_code < 300, retried.content[:300]
    assert "Idempotent-Replayed" not in retried


@pytest.mark.parametrize(("route", "method"), params_for(WRITE_CALLS, skip=why_not_callable))
def test_acmes_key_replays_nothing_to_another_tenant(
    route: Route, method: str, objs: AcmeObjects, world: World
) -> None:
    call = real_call(route, method, objs)
    assert 200 <= send(objs.client, method, call, **_keyed()).status_code < 300
    acme_answer = send(objs.client, method, call, **_keyed())

    outsider = send(world.outsider.client, method, call, **_keyed())

    assert "Idempotent-Replayed" not in outsider
    assert acme_answer["Idempotent-Replayed"] == "true"
    if route.params and (route.name, method) not in UPSERTS:
        assert_error_shape(outsider, 404, "not_found")


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "tab\tinside", "new\nline"])
def test_an_unusable_idempotency_key_is_a_400_and_stores_nothing(key: str, objs: AcmeObjects) -> None:
    url = f"{objs.session_url}/context/messages"
    before = stored_state()
    body = {"messages": [{"role": "user", "content": "hello"}]}

    response = objs.client.post(url, body, format="json", **_keyed(key))

    assert_error_shape(response, 400)
    assert stored_state() == before
