"""Storage is incremental: a full snapshot every CHECKPOINT_FULL_EVERY saves along a branch, compact deltas
between, and reads rebuild every state exactly."""

from __future__ import annotations

import pytest
from django.test import override_settings

from checkpoints_app.models import Checkpoint
from conftest import World
from sessions_app.models import AgentSession

from .helpers import acme_session, messages, saved, url

pytestmark = pytest.mark.django_db


def kinds(session: AgentSession) -> list[str]:
    return list(Checkpoint.objects.filter(session=session).order_by("sequence").values_list("kind", flat=True))


@override_settings(CHECKPOINT_FULL_EVERY=3)
def test_a_full_snapshot_is_stored_every_n_saves_and_deltas_between(world: World) -> None:
    session = acme_session(world)
    for count in range(1, 9):
        saved(world.acme.client, session, state=messages(count))

    assert kinds(session) == ["full", "delta", "delta", "full", "delta", "delta", "full", "delta"]


@override_settings(CHECKPOINT_FULL_EVERY=3)
def test_every_checkpoint_reads_back_its_exact_state(world: World) -> None:
    session = acme_session(world)
    for count in range(1, 9):
        saved(world.acme.client, session, state={**messages(count), "turn": count})

    for sequence in range(1, 9):
        response = world.acme.client.get(url(session, f"/by-sequence/{sequence}"))
        assert response.status_code == 200
        assert response.json()["state"] == {**messages(sequence), "turn": sequence}


def test_a_delta_stores_far_fewer_bytes_than_the_state(world: World) -> None:
    session = acme_session(world)
    long_messages = {"messages": [{"role": "user", "content": f"{i} " + "lorem ipsum " * 40} for i in range(30)]}
    saved(world.acme.client, session, state=long_messages)
    long_messages["messages"].append({"role": "assistant", "content": "the newest message"})

    saved(world.acme.client, session, state=long_messages)

    full, delta = Checkpoint.objects.filter(session=session).order_by("sequence")
    assert delta.kind == "delta"
    assert len(bytes(delta.payload)) < 200 < len(bytes(full.payload))


def test_a_full_snapshot_is_compressed(world: World) -> None:
    session = acme_session(world)
    state = {"messages": [{"role": "user", "content": "the same words again " * 20} for _ in range(20)]}

    saved(world.acme.client, session, state=state)

    stored = Checkpoint.objects.get(session=session)
    assert len(bytes(stored.payload)) < len(str(state)) / 4


def test_a_patch_larger_than_the_state_is_stored_as_a_full_snapshot(world: World) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={"a": "x" * 50})
    patch = [{"op": "add", "path": f"/k{i}", "value": i} for i in range(20)]
    patch += [{"op": "remove", "path": f"/k{i}"} for i in range(20)]

    second = saved(world.acme.client, session, parent_id=first["id"], patch=patch)

    assert second["kind"] == "full"
    assert world.acme.client.get(url(session, "/latest")).json()["state"] == {"a": "x" * 50}


def test_an_unchanged_state_is_stored_as_an_empty_delta(world: World) -> None:
    session = acme_session(world)
    saved(world.acme.client, session, state=messages(3))

    second = saved(world.acme.client, session, state=messages(3))

    assert second["kind"] == "delta"
    assert world.acme.client.get(url(session, "/latest")).json()["state"] == messages(3)
