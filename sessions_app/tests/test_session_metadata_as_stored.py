"""Session metadata is PostgreSQL jsonb, which keeps numbers as numeric: some floats come back as other JSON
numbers (1e16 as 10000000000000000, -0.0 as 0.0, 1e300 as a 301-digit integer). The metadata is compared,
measured against its limit and answered as it is kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import World
from sessions_app.models import AgentSession
from sessions_app.tests.helpers import create_session

pytestmark = pytest.mark.django_db

REWRITTEN = [1e16, -0.0, 1e300, 1e-7, 0.1]


@pytest.mark.parametrize("value", REWRITTEN, ids=repr)
def test_sending_the_same_metadata_again_keeps_the_etag_when_jsonb_rewrites_its_numbers(
    world: World, value: float
) -> None:
    create_session(world.acme.client, "s", "alice")
    first = world.acme.client.patch("/api/v1/sessions/s", {"metadata": {"x": value}}, format="json")

    again = world.acme.client.patch("/api/v1/sessions/s", {"metadata": {"x": value}}, format="json")

    assert (first.status_code, first["ETag"]) == (200, '"2"')
    assert (again.status_code, again["ETag"]) == (200, '"2"')
    assert world.acme.client.get("/api/v1/sessions/s")["ETag"] == '"2"'


@pytest.mark.parametrize("value", REWRITTEN, ids=repr)
def test_a_session_create_and_update_answer_the_metadata_as_a_later_read_gives_it(world: World, value: float) -> None:
    created = world.acme.client.post("/api/v1/sessions", {"user_id": "alice", "metadata": {"x": value}}, format="json")
    session_id = created.json()["id"]
    updated = world.acme.client.patch(f"/api/v1/sessions/{session_id}", {"metadata": {"y": [value]}}, format="json")

    read = world.acme.client.get(f"/api/v1/sessions/{session_id}")

    kept = _metadata(read)["x"]  # compared as JSON text: Python takes 1e16 == 10**16 and -0.0 == 0.0
    assert json.dumps(_metadata(created)) == json.dumps({"x": kept})
    assert json.dumps(_metadata(updated)) == json.dumps(_metadata(read)) == json.dumps({"x": kept, "y": [kept]})


def _metadata(response: Any) -> dict[str, Any]:
    # The body's own text: the test client's json() would parse it again the same way, but say so plainly.
    metadata: dict[str, Any] = json.loads(response.content)["metadata"]
    return metadata


def test_numbers_that_jsonb_keeps_longer_count_at_their_kept_length_when_a_session_is_created(
    world: World, settings
) -> None:
    settings.SESSION_METADATA_MAX_BYTES = 1024
    body = {"id": "big", "user_id": "alice", "metadata": {"a": [1e300] * 100}}  # ~800 bytes sent, ~30 KB kept

    response = world.acme.client.post("/api/v1/sessions", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] == "metadata"
    assert not AgentSession.objects.filter(session_id="big").exists()


def test_numbers_that_jsonb_keeps_longer_count_at_their_kept_length_when_metadata_is_merged(
    world: World, settings
) -> None:
    settings.SESSION_METADATA_MAX_BYTES = 1024
    create_session(world.acme.client, "s", "alice", metadata={"keep": 1})

    response = world.acme.client.patch("/api/v1/sessions/s", {"metadata": {"a": [1e300] * 100}}, format="json")

    assert response.status_code == 400, response.content
    assert AgentSession.objects.get(session_id="s").metadata == {"keep": 1}
