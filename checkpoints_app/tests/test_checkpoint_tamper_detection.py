"""A checkpoint row edited behind the service's back (raw SQL) is detected on read and by verify, and the
API names the first bad link: never a silently wrong state."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from checkpoints_app.models import Checkpoint
from conftest import World
from sessions_app.models import AgentSession

from .helpers import acme_session, messages, saved, url

pytestmark = pytest.mark.django_db


def sql(statement: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def chain(world: World, count: int) -> tuple[AgentSession, list[dict[str, Any]]]:
    session = acme_session(world)
    return session, [saved(world.acme.client, session, state=messages(i + 1)) for i in range(count)]


def assert_integrity_failure(response: Any, checkpoint: dict[str, Any]) -> None:
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "integrity_failure"
    assert error["details"]["checkpoint_id"] == checkpoint["id"]
    assert error["details"]["sequence"] == checkpoint["sequence"]


@override_settings(CHECKPOINT_FULL_EVERY=10)
def test_an_edited_delta_payload_fails_the_read_naming_that_link(world: World) -> None:
    session, saves = chain(world, 5)
    forged = b"p" + b'J{"patch":[{"op":"add","path":"/messages/-","value":{"role":"user","content":"forged"}}]}'
    sql("UPDATE checkpoints_app_checkpoint SET payload = %s WHERE id = %s", [forged, saves[2]["id"]])

    response = world.acme.client.get(url(session, "/latest"))

    assert_integrity_failure(response, saves[2])


def test_an_edited_full_snapshot_fails_the_read_of_itself(world: World) -> None:
    session, saves = chain(world, 1)
    forged = b"z" + zlib.compress(b'J{"state":{"messages":[]}}')
    sql("UPDATE checkpoints_app_checkpoint SET payload = %s WHERE id = %s", [forged, saves[0]["id"]])

    response = world.acme.client.get(url(session, f"/{saves[0]['id']}"))

    assert_integrity_failure(response, saves[0])


def test_edited_metadata_fails_the_read(world: World) -> None:
    session, saves = chain(world, 2)
    sql("UPDATE checkpoints_app_checkpoint SET metadata = '{\"forged\": true}' WHERE id = %s", [saves[1]["id"]])

    assert_integrity_failure(world.acme.client.get(url(session, "/by-sequence/2")), saves[1])


def test_an_edited_checksum_breaks_its_own_link(world: World) -> None:
    session, saves = chain(world, 3)
    sql("UPDATE checkpoints_app_checkpoint SET checksum = %s WHERE id = %s", ["0" * 64, saves[1]["id"]])

    assert_integrity_failure(world.acme.client.get(url(session, "/latest")), saves[1])


def test_a_rewritten_checkpoint_with_a_recomputed_checksum_breaks_its_childs_link(world: World) -> None:
    # A forger who rewrites a whole checkpoint consistently (here: copying a row that has the same parent
    # content but another state) still breaks the chain at the next link.
    session, saves = chain(world, 3)
    donor_session = acme_session(world)
    saved(world.acme.client, donor_session, state=messages(1))
    donor = saved(world.acme.client, donor_session, state={"forged": True})
    donor_row = Checkpoint.objects.get(pk=donor["id"])
    sql(
        "UPDATE checkpoints_app_checkpoint SET payload = %s, kind = %s, checksum = %s WHERE id = %s",
        [bytes(donor_row.payload), donor_row.kind, donor_row.checksum, saves[1]["id"]],
    )

    response = world.acme.client.get(url(session, "/latest"))

    assert_integrity_failure(response, saves[2])


def test_garbage_in_a_payload_is_an_integrity_failure_not_a_500(world: World) -> None:
    session, saves = chain(world, 2)
    sql("UPDATE checkpoints_app_checkpoint SET payload = %s WHERE id = %s", [b"z\x00garbage", saves[1]["id"]])

    assert_integrity_failure(world.acme.client.get(url(session, "/latest")), saves[1])


def test_a_delta_relabelled_as_full_is_an_integrity_failure(world: World) -> None:
    session, saves = chain(world, 2)
    sql("UPDATE checkpoints_app_checkpoint SET kind = 'full' WHERE id = %s", [saves[1]["id"]])

    assert_integrity_failure(world.acme.client.get(url(session, "/latest")), saves[1])


def test_verify_reports_a_valid_chain(world: World) -> None:
    session, _ = chain(world, 12)

    response = world.acme.client.get(url(session, "/verify"))

    assert response.status_code == 200
    report = response.json()
    assert (report["valid"], report["checked"], report["first_bad_link"]) == (True, 12, None)


@override_settings(CHECKPOINT_FULL_EVERY=4)
def test_verify_names_the_first_bad_link_of_a_tampered_chain(world: World) -> None:
    session, saves = chain(world, 9)
    sql("UPDATE checkpoints_app_checkpoint SET node_id = 'forged' WHERE id = %s", [saves[5]["id"]])
    sql("UPDATE checkpoints_app_checkpoint SET checksum = %s WHERE id = %s", ["1" * 64, saves[7]["id"]])

    response = world.acme.client.get(url(session, "/verify"))

    assert response.status_code == 200
    report = response.json()
    assert report["valid"] is False
    assert report["checked"] == 5
    assert report["first_bad_link"]["checkpoint_id"] == saves[5]["id"]
    assert report["first_bad_link"]["sequence"] == 6
    assert "checksum" in report["first_bad_link"]["reason"]


def test_a_save_on_top_of_a_tampered_parent_is_refused_and_stores_nothing(world: World) -> None:
    session, saves = chain(world, 2)
    sql("UPDATE checkpoints_app_checkpoint SET checksum = %s WHERE id = %s", ["2" * 64, saves[1]["id"]])

    response = world.acme.client.post(url(session), {"node_id": "a", "state": {}}, format="json")

    assert_integrity_failure(response, saves[1])
    assert Checkpoint.objects.filter(session=session).count() == 2


@override_settings(CHECKPOINT_FULL_EVERY=10)
def test_a_row_edited_after_it_was_read_is_rebuilt_and_named_not_answered_from_memory(world: World) -> None:
    session, saves = chain(world, 5)
    assert world.acme.client.get(url(session, "/latest")).status_code == 200  # verified and remembered
    sql("UPDATE checkpoints_app_checkpoint SET metadata = '{\"forged\": 1}' WHERE id = %s", [saves[2]["id"]])

    response = world.acme.client.get(url(session, "/latest"))

    assert_integrity_failure(response, saves[2])


@override_settings(CHECKPOINT_STATE_CACHE_BYTES=0, CHECKPOINT_FULL_EVERY=3)
def test_reads_and_saves_work_the_same_without_the_memory_of_rebuilt_states(world: World) -> None:
    session, saves = chain(world, 7)
    patched = saved(
        world.acme.client,
        session,
        parent_id=saves[-1]["id"],
        patch=[{"op": "add", "path": "/messages/-", "value": {"role": "user", "content": "patched"}}],
    )

    latest = world.acme.client.get(url(session, "/latest")).json()

    assert latest["id"] == patched["id"]
    assert latest["state"]["messages"] == [*messages(7)["messages"], {"role": "user", "content": "patched"}]
    assert world.acme.client.get(url(session, "/verify")).json()["valid"] is True


def test_a_patch_on_a_remembered_parent_tampered_since_is_an_integrity_failure_first(world: World) -> None:
    session, saves = chain(world, 2)
    sql("UPDATE checkpoints_app_checkpoint SET checksum = %s WHERE id = %s", ["3" * 64, saves[1]["id"]])

    response = world.acme.client.post(
        url(session),
        {"node_id": "a", "parent_id": saves[1]["id"], "patch": [{"op": "remove", "path": "/missing"}]},
        format="json",
    )

    assert_integrity_failure(response, saves[1])
    assert Checkpoint.objects.filter(session=session).count() == 2
