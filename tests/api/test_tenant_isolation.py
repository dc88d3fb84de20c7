"""Another tenant's key never reaches acme's objects (404, as for an id that does not exist), and a request
without a valid key is a 401 — on every route, with every method, in the one error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import World
from tenants_app.services import issue_api_key, revoke_api_key
from tests.api.catalogue import WRITE_METHODS, Route, calls, params_for
from tests.api.checks import acme_view, assert_error_shape, stored_state
from tests.api.recipes import (
    SESSION_ID,
    STORE_SECRET,
    UPSERTS,
    USER_ID,
    AcmeObjects,
    Call,
    real_call,
    send,
    why_no_path,
    why_not_callable,
)
from tests.clients import AgentClient

pytestmark = pytest.mark.django_db

# Path parameter values that name nothing at all.
MISSING = {
    "session_id": "s-no-such-session",
    "tool": "no-such-tool",
    "operation_id": "00000000-0000-4000-8000-000000000000",
    "checkpoint_id": "00000000-0000-4000-8000-000000000001",
    "sequence": "99",
    "memory_id": "00000000-0000-4000-8000-000000000002",
    "job_id": "00000000-0000-4000-8000-000000000003",
    "user_id": "u-no-such-user",
    "request_id": "00000000-0000-4000-8000-000000000004",
    "export_id": "00000000-0000-4000-8000-000000000005",
}


def _scoped(route: Route, method: str) -> bool:
    """The call addresses one of acme's objects by id (else it is a collection, or the outsider's own upsert)."""
    return bool(route.params) and (route.name, method) not in UPSERTS


SCOPED_CALLS = [(route, method) for route, method in calls() if _scoped(route, method)]
COLLECTION_CALLS = [(route, method) for route, method in calls() if not _scoped(route, method)]


@pytest.mark.parametrize(("route", "method"), params_for(SCOPED_CALLS, skip=why_not_callable))
def test_the_outsider_gets_a_404_on_acmes_object_and_acmes_data_does_not_change(
    route: Route, method: str, objs: AcmeObjects, world: World
) -> None:
    call = real_call(route, method, objs)
    view_before, stored_before = acme_view(objs, within=route), stored_state()

    response = send(world.outsider.client, method, call)

    assert_error_shape(response, 404, "not_found")
    assert stored_state() == stored_before
    assert acme_view(objs, within=route) == view_before


@pytest.mark.parametrize(("route", "method"), params_for(SCOPED_CALLS, skip=why_not_callable))
def test_the_outsider_cannot_tell_acmes_object_from_one_that_does_not_exist(
    route: Route, method: str, objs: AcmeObjects, world: World
) -> None:
    call = real_call(route, method, objs)
    nowhere = Call(url=route.url({name: MISSING[name] for name in route.params}), body=call.body, query=call.query)

    on_acme = assert_error_shape(send(world.outsider.client, method, call))
    on_nothing = assert_error_shape(send(world.outsider.client, method, nowhere))

    assert (on_acme["status"], on_acme["code"], on_acme["message"]) == (
        on_nothing["status"],
        on_nothing["code"],
        on_nothing["message"],
    )
    assert set(on_acme["details"]) == set(on_nothing["details"])


def _build_everything(objs: AcmeObjects) -> None:
    built = ("session_id", "tool", "operation_id", "checkpoints", "memory_id", "job_id", "user_id", "erasure_id")
    for name in (*built, "langgraph"):
        getattr(objs, name)


@pytest.mark.parametrize(("route", "method"), params_for(COLLECTION_CALLS, skip=why_not_callable))
def test_the_outsider_sees_none_of_acmes_data_through_a_collection_or_its_own_upsert(
    route: Route, method: str, objs: AcmeObjects, world: World
) -> None:
    _build_everything(objs)
    call = real_call(route, method, objs)
    view_before = acme_view(objs)

    response = send(world.outsider.client, method, call)

    assert response.status_code < 500
    text = response.content.decode()
    secrets = (
        SESSION_ID,
        "Prefers refunds to the original card.",
        "charged twice",
        objs.memory_id,
        '"language"',
        STORE_SECRET,
    )
    for secret in secrets:
        assert secret not in text
    if USER_ID not in json.dumps(call.body) + call.url:  # the outsider may have named it itself
        assert USER_ID not in text
    assert acme_view(objs) == view_before


# --- authentication -------------------------------------------------------------------------------------

CREDENTIALS = ["no key", "unknown key", "revoked key", "revoked key as X-API-Key", "wrong scheme"]


def _credentials(kind: str, world: World) -> dict[str, Any]:
    if kind == "no key":
        return {}
    if kind == "unknown key":
        return {"HTTP_AUTHORIZATION": "Bearer mk_notarealkey_0000000000000000000000"}
    if kind == "wrong scheme":
        return {"HTTP_AUTHORIZATION": f"Basic {world.acme.raw_key}"}
    api_key, raw_key = issue_api_key(tenant=world.acme.tenant, name="soon revoked")
    revoke_api_key(api_key_id=api_key.pk)
    if kind == "revoked key as X-API-Key":
        return {"HTTP_X_API_KEY": raw_key}
    return {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}


@pytest.mark.parametrize(("route", "method"), params_for(calls(), skip=why_no_path))
def test_a_request_without_a_valid_key_is_a_401_and_changes_nothing(
    route: Route, method: str, objs: AcmeObjects, world: World
) -> None:
    call = real_call(route, method, objs)
    if method in WRITE_METHODS and call.body is None:
        call = Call(url=call.url, body={}, query=call.query)
    credentials = {kind: _credentials(kind, world) for kind in CREDENTIALS}
    stored_before = stored_state()

    for kind, headers in credentials.items():
        response = send(AgentClient(), method, call, **headers)
        assert response.status_code == 401, kind
        assert_error_shape(response, 401, "unauthenticated")
        assert response["WWW-Authenticate"].startswith("Bearer"), kind
    assert stored_state() == stored_before


@pytest.mark.parametrize(("route", "method"), params_for(calls(methods=("GET",)), skip=why_no_path))
def test_a_key_revoked_after_use_is_refused_at_once(
    route: Route, method: str, objs: AcmeObjects, world: World, django_capture_on_commit_callbacks: Any
) -> None:
    call = real_call(route, method, objs)
    api_key, raw_key = issue_api_key(tenant=world.acme.tenant, name="used then revoked")
    client = AgentClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert send(client, method, call).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        revoke_api_key(api_key_id=api_key.pk)

    assert_error_shape(send(client, method, call), 401, "unauthenticated")
