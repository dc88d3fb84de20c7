"""Lowering CHECKPOINT_MAX_STATE_BYTES holds new saves to the new limit but leaves what was saved readable:
a stored delta whose `copy` operations were within the limit of its day still replays. A delta edited to copy
the state into itself over and over is stopped by a fixed ceiling and named as a broken link."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings

from checkpoints_app import chain
from checkpoints_app.cache import states
from checkpoints_app.storage import Body, encode_body
from conftest import World

from .helpers import acme_session, save, saved, url

pytestmark = pytest.mark.django_db


def test_a_copy_delta_saved_under_a_higher_limit_reads_back_after_the_limit_is_lowered(world: World) -> None:
    client = world.acme.client
    session = acme_session(world)
    with override_settings(CHECKPOINT_MAX_STATE_BYTES=64 * 1024):
        first = saved(client, session, state={"doc": "x" * 20_000})
        second = saved(client, session, parent_id=first["id"], patch=[{"op": "copy", "from": "/doc", "path": "/copy"}])
    assert second["kind"] == "delta"
    states.clear()

    with override_settings(CHECKPOINT_MAX_STATE_BYTES=16 * 1024):
        latest = client.get(url(session, "/latest"))
        report = client.get(url(session, "/verify")).json()
        shrunk = [{"op": "remove", "path": "/copy"}, {"op": "replace", "path": "/doc", "value": "short"}]
        on_top = save(client, session, parent_id=second["id"], patch=shrunk)

    assert latest.status_code == 200, latest.content
    assert latest.json()["state"] == {"doc": "x" * 20_000, "copy": "x" * 20_000}
    assert (report["valid"], report["checked"]) == (True, 2)
    assert on_top.status_code == 201, on_top.content


def test_a_stored_delta_edited_to_copy_the_state_into_itself_over_and_over_is_a_broken_link(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chain, "REPLAY_COPY_BYTES", 1_048_576)  # a small ceiling keeps the test quick
    client = world.acme.client
    session = acme_session(world)
    first = saved(client, session, state={"doc": "x" * 100})
    second = saved(client, session, parent_id=first["id"], patch=[{"op": "add", "path": "/n", "value": 1}])
    bomb = [{"op": "copy", "from": "", "path": f"/c{i}"} for i in range(40)]  # doubles the state 40 times
    payload = encode_body(Body(patch=bomb), owner=chain.owner_of(session))
    with connection.cursor() as cursor:
        cursor.execute("UPDATE checkpoints_app_checkpoint SET payload = %s WHERE id = %s", [payload, second["id"]])
    states.clear()

    with override_settings(CHECKPOINT_MAX_STATE_BYTES=16 * 1024):
        response = client.get(url(session, "/latest"))

    assert response.status_code == 409, response.content
    details = response.json()["error"]["details"]
    assert (details["checkpoint_id"], details["sequence"]) == (second["id"], 2)
    assert "would grow the state past 1048576 bytes" in details["reason"]
