"""A client may state the sequence it expects and the checksum it computed: retries are idempotent,
disagreements are refused (409 for a taken or skipped sequence, 422 for a wrong checksum)."""

from __future__ import annotations

import pytest

from checkpoints_app.models import Checkpoint
from conftest import World

from .helpers import acme_session, save, saved

pytestmark = pytest.mark.django_db


def test_a_save_with_the_servers_checksum_is_accepted(world: World) -> None:
    session = acme_session(world)
    probe_session = acme_session(world)
    checksum = saved(world.acme.client, probe_session, node_id="a", state={"x": 1})["checksum"]

    response = save(world.acme.client, session, node_id="a", state={"x": 1}, checksum=checksum.upper())

    assert response.status_code == 201
    assert response.json()["checksum"] == checksum


def test_save_with_mismatching_checksum_returns_422_with_the_servers_value(world: World) -> None:
    session = acme_session(world)

    response = save(world.acme.client, session, state={"x": 1}, checksum="ab" * 32)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unprocessable"
    assert error["details"]["sent"] == "ab" * 32
    assert len(error["details"]["computed"]) == 64
    assert not Checkpoint.objects.exists()


def test_saving_the_same_sequence_again_with_the_same_content_returns_the_stored_one_with_200(world: World) -> None:
    session = acme_session(world)
    first = save(world.acme.client, session, node_id="a", state={"x": 1}, sequence=1, metadata={"m": 1})

    again = save(world.acme.client, session, node_id="a", state={"x": 1}, sequence=1, metadata={"m": 1})

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Checkpoint.objects.count() == 1


def test_a_retried_patch_save_with_its_sequence_is_idempotent(world: World) -> None:
    session = acme_session(world)
    root = saved(world.acme.client, session, state={"n": 0}, sequence=1)
    patch = [{"op": "replace", "path": "/n", "value": 1}]
    first = save(world.acme.client, session, parent_id=root["id"], patch=patch, sequence=2)
    saved(world.acme.client, session, state={"n": 2}, sequence=3)

    again = save(world.acme.client, session, parent_id=root["id"], patch=patch, sequence=2)

    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Checkpoint.objects.count() == 3


def test_saving_a_taken_sequence_with_different_content_returns_409_with_the_latest(world: World) -> None:
    session = acme_session(world)
    saved(world.acme.client, session, state={"x": 1}, sequence=1)
    latest = saved(world.acme.client, session, state={"x": 2}, sequence=2)

    response = save(world.acme.client, session, state={"x": "different"}, sequence=1)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert error["details"]["next_sequence"] == 3
    assert error["details"]["latest"] == {
        "id": latest["id"],
        "sequence": 2,
        "checksum": latest["checksum"],
    }
    assert Checkpoint.objects.count() == 2


def test_saving_a_taken_sequence_with_another_node_id_returns_409(world: World) -> None:
    session = acme_session(world)
    saved(world.acme.client, session, node_id="a", state={"x": 1}, sequence=1)

    response = save(world.acme.client, session, node_id="b", state={"x": 1}, sequence=1)

    assert response.status_code == 409


def test_saving_a_taken_sequence_naming_another_parent_returns_409(world: World) -> None:
    session = acme_session(world)
    root = saved(world.acme.client, session, state={"x": 0})
    saved(world.acme.client, session, state={"x": 1})
    saved(world.acme.client, session, state={"x": 2})

    response = save(world.acme.client, session, state={"x": 2}, sequence=3, parent_id=root["id"])

    assert response.status_code == 409


def test_a_sequence_that_skips_ahead_returns_409_naming_the_next_one(world: World) -> None:
    session = acme_session(world)
    saved(world.acme.client, session, state={})

    response = save(world.acme.client, session, state={}, sequence=5)

    assert response.status_code == 409
    assert response.json()["error"]["details"]["next_sequence"] == 2
    assert Checkpoint.objects.count() == 1


def test_a_retry_with_the_same_idempotency_key_replays_the_first_response(world: World) -> None:
    session = acme_session(world)
    first = world.acme.client.post(
        f"/api/v1/sessions/{session.session_id}/checkpoints",
        {"node_id": "a", "state": {}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="save-1",
    )
    again = world.acme.client.post(
        f"/api/v1/sessions/{session.session_id}/checkpoints",
        {"node_id": "a", "state": {}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="save-1",
    )

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Checkpoint.objects.count() == 1
