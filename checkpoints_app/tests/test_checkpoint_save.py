"""Saving a checkpoint: the full state or a patch, a server-assigned sequence, a chained checksum, a live message."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from checkpoints_app.models import Checkpoint
from conftest import World
from memory_admin.codec import canonical_json
from memory_admin.health import redis_client
from memory_admin.live import channel_name, session_group

from .helpers import acme_session, messages, save, saved, url

pytestmark = pytest.mark.django_db


def expected_checksum(
    *, parent: str | None, sequence: int, node_id: str, metadata: dict[str, Any], state: dict[str, Any]
) -> str:
    envelope = {"v": 1, "parent": parent, "sequence": sequence, "node_id": node_id, "metadata": metadata}
    envelope["state"] = state
    return hashlib.sha256(canonical_json(envelope)).hexdigest()


def test_saving_the_first_full_state_returns_201_with_sequence_1_and_no_parent(world: World) -> None:
    session = acme_session(world)

    response = save(world.acme.client, session, node_id="planner", state=messages(1), metadata={"step": 1})

    assert response.status_code == 201
    body = response.json()
    assert body["sequence"] == 1
    assert body["parent_id"] is None
    assert body["node_id"] == "planner"
    assert body["metadata"] == {"step": 1}
    assert body["schema_version"] == 1
    assert response["Location"] == url(session, f"/{body['id']}")


def test_the_checksum_is_sha256_over_the_documented_canonical_envelope_chained_to_the_parent(world: World) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, node_id="a", state=messages(1))
    second = saved(world.acme.client, session, node_id="b", state=messages(2), metadata={"k": "v"})

    assert first["checksum"] == expected_checksum(parent=None, sequence=1, node_id="a", metadata={}, state=messages(1))
    assert second["checksum"] == expected_checksum(
        parent=first["checksum"], sequence=2, node_id="b", metadata={"k": "v"}, state=messages(2)
    )


def test_a_save_without_parent_follows_the_latest_checkpoint(world: World) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state=messages(1))

    second = saved(world.acme.client, session, state=messages(2))

    assert second["sequence"] == 2
    assert second["parent_id"] == first["id"]
    assert second["parent_sequence"] == 1
    assert second["forked"] is False


def test_saving_a_patch_stores_the_parents_state_with_the_patch_applied(world: World) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={"messages": [], "step": 0})
    patch = [
        {"op": "add", "path": "/messages/-", "value": {"role": "user", "content": "hello"}},
        {"op": "replace", "path": "/step", "value": 1},
    ]

    second = saved(world.acme.client, session, parent_id=first["id"], patch=patch)

    latest = world.acme.client.get(url(session, "/latest")).json()
    assert latest["id"] == second["id"]
    assert latest["state"] == {"messages": [{"role": "user", "content": "hello"}], "step": 1}


def test_a_patch_that_edits_a_value_it_added_is_stored_so_that_it_rebuilds(world: World) -> None:
    # jsonpatch inserts values by reference: the second op must not rewrite the first op as stored.
    session = acme_session(world)
    first = saved(world.acme.client, session, state={"step": 0})
    patch = [{"op": "add", "path": "/items", "value": []}, {"op": "add", "path": "/items/-", "value": 1}]

    second = saved(world.acme.client, session, parent_id=first["id"], patch=patch)

    response = world.acme.client.get(url(session, f"/{second['id']}"))
    assert response.status_code == 200
    assert response.json()["state"] == {"step": 0, "items": [1]}


def test_a_save_records_the_sessions_event_head(world: World) -> None:
    session = acme_session(world, head_version=7)

    body = saved(world.acme.client, session, state={})

    assert body["event_version"] == 7


def test_a_save_publishes_checkpoint_saved_to_the_session_group_after_commit(
    world: World, django_capture_on_commit_callbacks
) -> None:
    session = acme_session(world)
    pubsub = redis_client().pubsub()
    pubsub.subscribe(channel_name(session_group(session.pk)))
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"

    with django_capture_on_commit_callbacks(execute=True):
        body = saved(world.acme.client, session, node_id="tool", state={"x": 1})

    message = pubsub.get_message(timeout=2)
    pubsub.close()
    assert message is not None
    data = json.loads(message["data"])
    assert data["type"] == "checkpoint.saved"
    assert data["session"] == session.session_id
    assert data["checkpoint"] == body["id"]
    assert data["sequence"] == 1
    assert data["node_id"] == "tool"


def test_a_save_that_fails_publishes_nothing_and_stores_nothing(
    world: World, django_capture_on_commit_callbacks
) -> None:
    session = acme_session(world)
    with django_capture_on_commit_callbacks() as callbacks:
        response = save(world.acme.client, session, state={"x": 1}, checksum="0" * 64)

    assert response.status_code == 422
    assert callbacks == []
    assert not Checkpoint.objects.filter(session=session).exists()
