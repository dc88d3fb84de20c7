"""Reading checkpoints: latest, by id, by sequence, and the list newest first with cursor pagination."""

from __future__ import annotations

import pytest

from conftest import World
from tests.clients import AgentClient

from .helpers import acme_session, messages, saved, url

pytestmark = pytest.mark.django_db


def test_latest_returns_the_newest_checkpoint_with_its_state(world: World) -> None:
    session = acme_session(world)
    saved(world.acme.client, session, state=messages(1))
    newest = saved(world.acme.client, session, node_id="writer", state=messages(2), metadata={"turn": 2})

    response = world.acme.client.get(url(session, "/latest"))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == newest["id"]
    assert body["sequence"] == 2
    assert body["node_id"] == "writer"
    assert body["metadata"] == {"turn": 2}
    assert body["checksum"] == newest["checksum"]
    assert body["state"] == messages(2)


def test_latest_of_a_session_without_checkpoints_returns_404(world: World) -> None:
    response = world.acme.client.get(url(acme_session(world), "/latest"))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_checkpoint_reads_by_id_and_by_sequence(world: World) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={"a": 1})
    saved(world.acme.client, session, state={"a": 2})

    by_id = world.acme.client.get(url(session, f"/{first['id']}")).json()
    by_sequence = world.acme.client.get(url(session, "/by-sequence/1")).json()

    assert by_id == by_sequence
    assert by_id["state"] == {"a": 1}


@pytest.mark.parametrize(
    "suffix",
    ["/by-sequence/99", "/by-sequence/99999999999999999999999", "/00000000-0000-4000-8000-000000000000"],
)
def test_an_unknown_checkpoint_returns_404(world: World, suffix: str) -> None:
    session = acme_session(world)
    saved(world.acme.client, session, state={})

    response = world.acme.client.get(url(session, suffix))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_checkpoint_of_another_session_of_the_same_tenant_is_not_found(world: World) -> None:
    session, other = acme_session(world), acme_session(world)
    theirs = saved(world.acme.client, other, state={})

    assert world.acme.client.get(url(session, f"/{theirs['id']}")).status_code == 404


def test_the_list_is_newest_first_without_states_and_pages_by_cursor(world: World) -> None:
    session = acme_session(world)
    for count in range(1, 6):
        saved(world.acme.client, session, state=messages(count))

    first_page = world.acme.client.get(url(session, "?limit=2")).json()
    second_page = world.acme.client.get(first_page["next"]).json()
    third_page = world.acme.client.get(second_page["next"]).json()

    sequences = [item["sequence"] for page in (first_page, second_page, third_page) for item in page["results"]]
    assert sequences == [5, 4, 3, 2, 1]
    assert third_page["next"] is None
    assert "state" not in first_page["results"][0]
    assert "payload" not in first_page["results"][0]


def test_requests_without_an_api_key_are_refused(world: World) -> None:
    session = acme_session(world)

    response = AgentClient().get(url(session))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_the_openapi_schema_describes_the_checkpoint_endpoints() -> None:
    schema = AgentClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()

    paths = schema["paths"]
    base = "/api/v1/sessions/{session_id}/checkpoints"
    for suffix in ["", "/latest", "/diff", "/verify", "/by-sequence/{sequence}", "/{checkpoint_id}"]:
        assert base + suffix in paths
    request_schema = paths[base]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert request_schema.endswith("/CheckpointInRequest")
    assert "state" in schema["components"]["schemas"]["CheckpointWithStateOut"]["properties"]
    assert "next" in schema["components"]["schemas"]["PaginatedCheckpointOutList"]["properties"]


@pytest.mark.parametrize(
    "session_id",
    ["%00", "x%00y", "no-such-session", "x" * 300, "%C3%A9t%C3%A9"],
    ids=["nul", "nul-inside", "unknown", "long", "unicode"],
)
def test_an_unknown_or_impossible_session_id_returns_404(world: World, session_id: str) -> None:
    for suffix in ["", "/latest", "/verify"]:
        response = world.acme.client.get(f"/api/v1/sessions/{session_id}/checkpoints{suffix}")
        assert response.status_code == 404, (suffix, response.content)
        assert response.json()["error"]["code"] == "not_found"
