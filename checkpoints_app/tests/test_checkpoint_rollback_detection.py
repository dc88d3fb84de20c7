"""A session rolled back in SQL is caught: a save adds its checkpoint and moves the session's head to it in one
transaction, and retention never removes the newest checkpoint, so a head that does not name the newest (or
a newest that is missing) can only be an edit behind the service's back. Verify says so instead of blaming
retention, and the read of the latest refuses instead of answering an older state."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from checkpoints_app.cache import states
from checkpoints_app.selectors import chain_status
from conftest import World
from sessions_app.models import AgentSession

from .helpers import acme_session, messages, save, saved, url

pytestmark = pytest.mark.django_db


def sql(statement: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
    states.clear()


def three_saved(world: World) -> tuple[AgentSession, list[dict[str, Any]]]:
    session = acme_session(world)
    return session, [saved(world.acme.client, session, state=messages(i + 1)) for i in range(3)]


def point_latest_at(session: AgentSession, checkpoint: dict[str, Any]) -> None:
    sql(
        "UPDATE checkpoints_app_checkpointhead SET latest_id = %s WHERE session_id = %s",
        [checkpoint["id"], session.pk],
    )


def test_deleting_the_newest_checkpoint_fails_verify_and_is_not_reported_as_retention(world: World) -> None:
    session, saves = three_saved(world)
    point_latest_at(session, saves[1])
    sql("DELETE FROM checkpoints_app_checkpoint WHERE id = %s", [saves[2]["id"]])

    report = world.acme.client.get(url(session, "/verify")).json()

    assert report["valid"] is False
    assert report["first_bad_link"]["sequence"] == 3 and report["first_bad_link"]["checkpoint_id"] is None
    assert "newest" in report["first_bad_link"]["reason"]
    assert report["removed_by_retention"] == [] and report["checked"] == 2


def test_deleting_the_newest_checkpoint_makes_the_read_of_the_latest_an_integrity_failure(world: World) -> None:
    session, saves = three_saved(world)
    point_latest_at(session, saves[1])
    sql("DELETE FROM checkpoints_app_checkpoint WHERE id = %s", [saves[2]["id"]])

    response = world.acme.client.get(url(session, "/latest"))

    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "integrity_failure"
    assert response.json()["error"]["details"]["sequence"] == 3


def test_moving_the_latest_back_fails_verify_and_the_read_of_the_latest(world: World) -> None:
    session, saves = three_saved(world)
    point_latest_at(session, saves[0])

    report = world.acme.client.get(url(session, "/verify")).json()
    latest = world.acme.client.get(url(session, "/latest"))

    assert report["valid"] is False
    assert (report["first_bad_link"]["checkpoint_id"], report["first_bad_link"]["sequence"]) == (saves[2]["id"], 3)
    assert latest.status_code == 409 and latest.json()["error"]["code"] == "integrity_failure"


def test_a_save_on_the_latest_of_a_rolled_back_session_is_refused(world: World) -> None:
    session, saves = three_saved(world)
    point_latest_at(session, saves[0])

    response = save(world.acme.client, session, state=messages(9))

    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "integrity_failure"


def test_a_head_moved_back_behind_its_newest_checkpoint_fails_verify(world: World) -> None:
    session, saves = three_saved(world)
    sql(
        "UPDATE checkpoints_app_checkpointhead SET last_sequence = 2, latest_id = %s WHERE session_id = %s",
        [saves[1]["id"], session.pk],
    )

    report = world.acme.client.get(url(session, "/verify")).json()

    assert report["valid"] is False
    assert (report["first_bad_link"]["checkpoint_id"], report["first_bad_link"]["sequence"]) == (saves[2]["id"], 3)


def test_deleting_every_checkpoint_of_a_session_fails_verify(world: World) -> None:
    session, _ = three_saved(world)
    sql("UPDATE checkpoints_app_checkpointhead SET latest_id = NULL WHERE session_id = %s", [session.pk])
    sql("DELETE FROM checkpoints_app_checkpoint WHERE session_id = %s", [session.pk])

    report = world.acme.client.get(url(session, "/verify")).json()
    latest = world.acme.client.get(url(session, "/latest"))

    assert (report["valid"], report["first_bad_link"]["sequence"]) == (False, 3)
    assert latest.status_code == 409, latest.content


def test_the_dashboards_chain_status_sees_a_head_moved_after_it_verified(world: World) -> None:
    session, saves = three_saved(world)
    assert chain_status(session=session).valid is True

    point_latest_at(session, saves[0])

    assert chain_status(session=session).valid is False


def test_a_session_without_checkpoints_verifies_as_empty(world: World) -> None:
    session = acme_session(world)

    report = world.acme.client.get(url(session, "/verify")).json()

    assert (report["valid"], report["checked"], report["first_bad_link"], report["verified_from"]) == (
        True,
        0,
        None,
        None,
    )
    assert world.acme.client.get(url(session, "/latest")).status_code == 404
