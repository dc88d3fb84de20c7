"""The operation journal: side effects recorded as pending before they run, closed afterwards."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conftest import World
from sessions_app.models import Operation
from sessions_app.tests.helpers import create_session

pytestmark = pytest.mark.django_db

BASE = "/api/v1/sessions/s/operations"


@pytest.fixture
def session(world: World) -> str:
    create_session(world.acme.client, "s", "alice")
    return "s"


def _record(world: World, key: str = "charge-42", **params: object) -> Any:
    body = {"name": "charge_card", "key": key, "params": params or {"amount": 42}}
    return world.acme.client.post(BASE, body, format="json")


def test_an_intent_is_recorded_as_pending_with_its_parameters(world: World, session: str) -> None:
    response = _record(world)
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["params"], body["result"]) == ("pending", {"amount": 42}, None)


def test_recording_the_same_intent_twice_returns_the_first_record(world: World, session: str) -> None:
    first = _record(world).json()
    again = _record(world)

    assert again.status_code == 200
    assert again.json() == first
    assert Operation.objects.count() == 1


@pytest.mark.parametrize(
    "other",
    [
        {"name": "refund", "params": {"amount": 42}},
        {"name": "charge_card", "params": {"amount": 99}},
        {"name": "charge_card", "params": {"amount": True}},
        {"name": "charge_card"},
    ],
)
def test_recording_another_intent_under_a_recorded_key_is_a_409_carrying_the_recorded_one(
    world: World, session: str, other: dict[str, Any]
) -> None:
    first = _record(world).json()

    response = world.acme.client.post(BASE, {"key": "charge-42", **other}, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert error["details"] == {
        "operation": first["id"],
        "status": "pending",
        "name": "charge_card",
        "params": {"amount": 42},
    }
    assert Operation.objects.count() == 1


def test_another_intent_under_a_recorded_key_is_a_409_once_the_session_is_completed_too(
    world: World, session: str
) -> None:
    _record(world)
    world.acme.client.patch("/api/v1/sessions/s", {"status": "completed"}, format="json")

    response = world.acme.client.post(BASE, {"name": "refund", "key": "charge-42"}, format="json")

    assert response.status_code == 409 and response.json()["error"]["details"]["name"] == "charge_card"


def test_keys_and_names_are_taken_exactly_as_given(world: World, session: str) -> None:
    first = _record(world, key="k1").json()

    spaced = world.acme.client.post(
        BASE, {"name": " charge_card", "key": "k1 ", "params": {"amount": 42}}, format="json"
    )
    blank = world.acme.client.post(BASE, {"name": "charge_card", "key": "  "}, format="json")

    assert spaced.status_code == 201 and spaced.json()["id"] != first["id"]
    assert (spaced.json()["key"], spaced.json()["name"]) == ("k1 ", " charge_card")
    assert blank.status_code == 400


def test_after_a_crash_the_agent_lists_what_is_still_pending(world: World, session: str) -> None:
    done = _record(world, key="a").json()
    _record(world, key="b")
    failed = _record(world, key="c").json()
    world.acme.client.post(f"{BASE}/{done['id']}/complete", {"result": {"receipt": "r-1"}}, format="json")
    world.acme.client.post(f"{BASE}/{failed['id']}/fail", {"error": {"reason": "card declined"}}, format="json")

    pending = world.acme.client.get(BASE, {"status": "pending"}).json()["results"]
    everything = world.acme.client.get(BASE).json()["results"]

    assert [op["key"] for op in pending] == ["b"]
    assert {op["key"]: op["status"] for op in everything} == {"a": "completed", "b": "pending", "c": "failed"}


def test_completing_records_the_result_and_completing_again_is_harmless(world: World, session: str) -> None:
    operation = _record(world).json()
    url = f"{BASE}/{operation['id']}/complete"

    first = world.acme.client.post(url, {"result": {"receipt": "r-1"}}, format="json")
    again = world.acme.client.post(url, {"result": {"receipt": "r-1"}}, format="json")

    assert first.status_code == again.status_code == 200
    assert first.json()["result"] == {"receipt": "r-1"}
    assert first.json()["finished_at"] is not None


def test_failing_a_completed_operation_is_a_409(world: World, session: str) -> None:
    operation = _record(world).json()
    world.acme.client.post(f"{BASE}/{operation['id']}/complete", {"result": None}, format="json")

    response = world.acme.client.post(f"{BASE}/{operation['id']}/fail", {"error": "late"}, format="json")

    assert response.status_code == 409
    assert Operation.objects.get().status == "completed"


def test_an_unknown_operation_is_a_404(world: World, session: str) -> None:
    response = world.acme.client.post(f"{BASE}/{uuid.uuid4()}/complete", {"result": 1}, format="json")
    assert response.status_code == 404


def test_another_tenant_cannot_close_an_operation(world: World, session: str) -> None:
    operation = _record(world).json()
    response = world.outsider.client.post(f"{BASE}/{operation['id']}/complete", {"result": 1}, format="json")
    assert response.status_code == 404
    assert Operation.objects.get().status == "pending"


def test_a_session_that_accepts_no_more_events_records_no_new_intent_but_returns_a_recorded_one(
    world: World, session: str
) -> None:
    recorded = _record(world, key="before").json()
    assert world.acme.client.patch("/api/v1/sessions/s", {"status": "completed"}, format="json").status_code == 200

    refused = _record(world, key="after")
    again = _record(world, key="before")

    assert refused.status_code == 409 and refused.json()["error"]["details"]["status"] == "completed"
    assert again.status_code == 200 and again.json()["id"] == recorded["id"]
    assert list(Operation.objects.values_list("key", flat=True)) == ["before"]


def test_a_completed_sessions_pending_operation_can_still_be_closed(world: World, session: str) -> None:
    operation = _record(world).json()
    world.acme.client.patch("/api/v1/sessions/s", {"status": "failed"}, format="json")

    response = world.acme.client.post(f"{BASE}/{operation['id']}/fail", {"error": "crashed"}, format="json")

    assert response.status_code == 200 and response.json()["status"] == "failed"


def test_an_archived_sessions_journal_takes_no_more_writes(world: World, session: str) -> None:
    operation = _record(world).json()
    world.acme.client.patch("/api/v1/sessions/s", {"status": "completed"}, format="json")
    assert world.acme.client.patch("/api/v1/sessions/s", {"status": "archived"}, format="json").status_code == 200

    closing = world.acme.client.post(f"{BASE}/{operation['id']}/complete", {"result": 1}, format="json")
    recording = _record(world, key="late")

    assert closing.status_code == recording.status_code == 409
    assert list(Operation.objects.values_list("key", "status")) == [("charge-42", "pending")]


@pytest.mark.parametrize(
    ("outcome", "first", "second"),
    [
        ("complete", {"result": {"charge": "ch_1"}}, {"result": {"charge": "ch_2"}}),
        ("fail", {"error": "a"}, {"error": "b"}),
    ],
)
def test_finishing_an_operation_again_with_another_outcome_is_a_409_that_keeps_the_first(
    world: World, session: str, outcome: str, first: dict[str, Any], second: dict[str, Any]
) -> None:
    operation = _record(world).json()
    url = f"{BASE}/{operation['id']}/{outcome}"
    kept = world.acme.client.post(url, first, format="json").json()

    response = world.acme.client.post(url, second, format="json")
    retry = world.acme.client.post(url, first, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert error["details"]["status"] == kept["status"]
    assert error["details"]["operation"] == operation["id"]
    field = "result" if outcome == "complete" else "error"
    assert error["details"][field] == first[field]
    assert retry.status_code == 200 and retry.json() == kept
