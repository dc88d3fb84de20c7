"""Newest-first lists page by a (timestamp, id) keyset: rows that share a timestamp (one batch) come back
exactly once whichever way a client walks, with `next` and `previous` links."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from checkpoints_app.tests.helpers import saved
from compliance_app.models import ErasureRequest, ExportRequest
from conftest import World
from memories_app.models import Memory
from sessions_app.models import AgentSession, Operation
from sessions_app.services import record_operation
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


def _walk(client: Any, url: str) -> tuple[list[list[str]], list[list[str]]]:
    """The pages' ids walking `next` from the first page to the last, then `previous` back to the first."""
    body = client.get(url).json()
    assert body["previous"] is None
    forward = [[row["id"] for row in body["results"]]]
    while body["next"]:
        body = client.get(body["next"]).json()
        forward.append([row["id"] for row in body["results"]])
    backward = [forward[-1]]
    while body["previous"]:
        body = client.get(body["previous"]).json()
        backward.append([row["id"] for row in body["results"]])
    return forward, backward


def _assert_each_row_once_each_way(forward: list[list[str]], backward: list[list[str]], expected: list[str]) -> None:
    assert [row for page in forward for row in page] == expected
    assert [row for page in reversed(backward) for row in page] == expected
    assert [len(page) for page in forward] == [25, 25, 10]
    assert backward == list(reversed(forward))


def test_memories_made_in_one_batch_are_each_listed_once_walking_forward_and_back(world: World) -> None:
    response = world.acme.client.post(
        "/api/v1/memories/batch",
        {"memories": [{"scope": "user", "user_id": "erin", "content": f"fact {n}"} for n in range(60)]},
        format="json",
    )
    assert response.status_code == 201
    Memory.objects.update(created_at=timezone.now())  # one timestamp, whatever the batch did
    expected = [str(pk) for pk in Memory.objects.order_by("-created_at", "-id").values_list("pk", flat=True)]

    forward, backward = _walk(world.acme.client, "/api/v1/memories?user_id=erin&limit=25")

    _assert_each_row_once_each_way(forward, backward, expected)


def test_sessions_with_one_timestamp_are_each_listed_once_walking_forward_and_back(world: World) -> None:
    now = timezone.now()
    for n in range(60):
        SessionFactory.create(tenant=world.acme.tenant, session_id=f"s-{n}", created_at=now)
    expected = list(AgentSession.objects.order_by("-created_at", "-id").values_list("session_id", flat=True))

    forward, backward = _walk(world.acme.client, "/api/v1/sessions?limit=25")

    _assert_each_row_once_each_way(forward, backward, expected)


def test_operations_with_one_timestamp_are_each_listed_once_walking_forward_and_back(world: World) -> None:
    session = SessionFactory.create(tenant=world.acme.tenant, session_id="s-1")
    for n in range(60):
        record_operation(session=session, name="send_email", key=f"k-{n}", params={"n": n})
    Operation.objects.update(created_at=timezone.now())
    expected = [str(pk) for pk in Operation.objects.order_by("-created_at", "-id").values_list("pk", flat=True)]

    forward, backward = _walk(world.acme.client, "/api/v1/sessions/s-1/operations?limit=25")

    _assert_each_row_once_each_way(forward, backward, expected)


@pytest.mark.parametrize(("model", "path"), [(ErasureRequest, "erasure-requests"), (ExportRequest, "export-requests")])
def test_requests_filed_at_one_time_are_each_listed_once_walking_forward_and_back(
    world: World, model: Any, path: str
) -> None:
    now = timezone.now()
    extra = {"due_at": now + timedelta(days=30)} if model is ErasureRequest else {}
    model.objects.bulk_create(
        [
            model(
                tenant=world.acme.tenant,
                user_id=f"u-{n}",
                subject="data subject",
                legal_basis="other",
                filed_by="api-key:test",
                filed_at=now,
                **extra,
            )
            for n in range(60)
        ]
    )
    expected = [str(pk) for pk in model.objects.order_by("-filed_at", "-id").values_list("pk", flat=True)]

    forward, backward = _walk(world.acme.client, f"/api/v1/{path}?limit=25")

    _assert_each_row_once_each_way(forward, backward, expected)


def test_checkpoints_page_newest_sequence_first_both_ways(world: World) -> None:
    session = SessionFactory.create(tenant=world.acme.tenant, session_id="s-1")
    ids = [saved(world.acme.client, session, state={"n": n})["id"] for n in range(7)]

    forward, backward = _walk(world.acme.client, "/api/v1/sessions/s-1/checkpoints?limit=3")

    assert forward == [ids[6:3:-1], ids[3:0:-1], ids[:1]]
    assert backward == list(reversed(forward))


def test_a_cursor_from_before_the_keyset_pages_is_a_400(world: World) -> None:
    old = base64.b64encode(b"o=25&p=2026-12-07+10%3A00%3A00%2B00%3A00").decode()

    response = world.acme.client.get("/api/v1/memories", {"cursor": old})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "cursor"}


def test_a_cursor_whose_position_is_not_a_timestamp_and_an_id_is_a_400(world: World) -> None:
    now = timezone.now().isoformat()
    for position in (["n", "yesterday", "x"], ["n", now], ["x", now, str(uuid.uuid4())], {"n": now}, ["n", now, 7]):
        token = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()

        response = world.acme.client.get("/api/v1/memories", {"cursor": token})

        assert response.status_code == 400, position
        assert response.json()["error"]["details"] == {"field": "cursor"}


@pytest.mark.parametrize("path", ["/api/v1/sessions", "/api/v1/sessions/s-1/checkpoints", "/api/v1/memories"])
def test_a_cursor_whose_time_has_an_offset_postgres_refuses_names_the_same_moment_in_utc(
    world: World, path: str
) -> None:
    session = SessionFactory.create(tenant=world.acme.tenant, session_id="s-1")
    saved(world.acme.client, session, state={"n": 1})
    positions = {
        "/api/v1/sessions": ["n", "2999-01-01T00:00:00+16:00", str(uuid.uuid4())],
        "/api/v1/sessions/s-1/checkpoints": ["n", "99", "2999-01-01T00:00:00-18:00"],
        "/api/v1/memories": ["n", "2999-01-01T00:00:00+18:00", str(uuid.uuid4())],
    }
    token = base64.urlsafe_b64encode(json.dumps(positions[path]).encode()).decode()

    response = world.acme.client.get(path, {"cursor": token})

    assert response.status_code == 200, response.json()


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-12:00"])
def test_a_cursor_whose_time_in_utc_falls_outside_the_calendar_is_a_400(world: World, moment: str) -> None:
    token = base64.urlsafe_b64encode(json.dumps(["n", moment, str(uuid.uuid4())]).encode()).decode()

    response = world.acme.client.get("/api/v1/sessions", {"cursor": token})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "cursor"}
