"""Numbers that look equal but are written differently (0.0 and -0.0) or that PostgreSQL's jsonb keeps in its
own way (1e16 comes back as 10000000000000000) still read back and verify, in any process: the checksum covers
exactly what is stored. Each read forgets the saving process's memo of the states it just saved, as another
worker of the web server would not have it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from checkpoints_app.cache import states
from conftest import World

from .helpers import acme_session, saved, url

pytestmark = pytest.mark.django_db

BIG = "x" * 400  # large enough that a small change is stored as a delta


def _read(world: World, session: Any, suffix: str) -> dict[str, Any]:
    states.clear()
    response = world.acme.client.get(url(session, suffix))
    assert response.status_code == 200, response.content
    data: dict[str, Any] = response.json()
    return data


@override_settings(CHECKPOINT_FULL_EVERY=10)
@pytest.mark.parametrize(("first", "second"), [(0.0, -0.0), (-0.0, 0.0), ([0.0], [-0.0])])
def test_a_change_between_zero_and_negative_zero_is_stored_and_reads_back(
    world: World, first: Any, second: Any
) -> None:
    session = acme_session(world)
    saved(world.acme.client, session, state={"big": BIG, "x": first})
    latest = saved(world.acme.client, session, state={"big": BIG, "x": second})

    assert latest["kind"] == "delta"
    assert repr(_read(world, session, "/latest")["state"]["x"]) == repr(second)
    assert _read(world, session, "/verify")["valid"] is True


@pytest.mark.parametrize(
    ("sent", "stored"),
    [(1e16, 10000000000000000), (-0.0, 0.0), (1.5e20, 150000000000000000000), (0.25, 0.25), (1e-7, 1e-7)],
)
def test_metadata_numbers_are_answered_as_stored_and_the_chain_verifies(world: World, sent: float, stored: Any) -> None:
    session = acme_session(world)

    answer = saved(world.acme.client, session, state={"a": 1}, metadata={"score": sent, "nested": [sent]})

    assert repr(answer["metadata"]["score"]) == repr(stored)
    read = _read(world, session, "/by-sequence/1")
    assert read["metadata"] == {"score": stored, "nested": [stored]} and read["checksum"] == answer["checksum"]
    assert _read(world, session, "/verify")["valid"] is True


def test_saving_the_same_float_metadata_again_with_its_sequence_is_the_same_save(world: World) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={"a": 1}, metadata={"score": 1e16})

    again = world.acme.client.post(
        url(session), {"node_id": "agent", "state": {"a": 1}, "metadata": {"score": 1e16}, "sequence": 1}, format="json"
    )

    assert again.status_code == 200, again.content
    assert again.json()["id"] == first["id"]
