"""A promotion whose near-duplicate in the user's scope is deleted (DELETE /memories/{id}) after the promotion
found it and before it locked it: the promoted text must not go into the deleted row (the job reporting it
updated while no live memory holds it). The promotion searches again: it updates the next near-duplicate, or adds
the text as a new memory.

The race is made deterministic with a row lock: this test's connection locks the near-duplicate as a DELETE's
transaction does, the promotion (on its own thread and connection) finds it and waits for its lock, and the test
deletes it and commits while the promotion waits.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from conftest import World
from memories_app import background
from memories_app.models import Memory, MemoryRevision, PromotionJob
from memories_app.services import request_promotion
from memories_app.tests.conftest import create, make_session
from tests.concurrency import wait_until_blocked

pytestmark = pytest.mark.django_db(transaction=True)

PROMOTED = "Alice prefers window seats on long flights!"


def _promote_while_deleting(world: World, doomed_id: str) -> PromotionJob:
    session = make_session(world, user_id="alice", session_id="s-1")
    job = request_promotion(tenant=world.acme.tenant, session=session, texts=[PROMOTED])
    errors: list[BaseException] = []

    def run() -> None:
        try:
            background.run_promotion(job.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    with transaction.atomic():
        Memory.objects.select_for_update().get(pk=doomed_id)
        worker.start()
        wait_until_blocked(what="the promotion")
        # What delete_memory does, committed while the promotion waits for the row.
        Memory.objects.filter(pk=doomed_id).update(deleted_at=timezone.now())
    worker.join(timeout=30)
    assert not worker.is_alive() and not errors, errors
    job.refresh_from_db()
    return job


def _alive() -> list[str]:
    return sorted(Memory.objects.alive().filter(user_id="alice").values_list("content", flat=True))


def test_a_promotion_whose_near_duplicate_is_deleted_meanwhile_adds_its_text_as_a_new_memory(world: World) -> None:
    doomed = create(
        world.acme.client, scope="user", user_id="alice", content="Alice prefers window seats on long flights."
    )

    job = _promote_while_deleting(world, doomed.json()["id"])

    assert job.status == "done" and job.updated_ids == [] and len(job.created_ids) == 1
    assert doomed.json()["id"] not in job.created_ids
    assert _alive() == [PROMOTED]
    deleted = Memory.objects.get(pk=doomed.json()["id"])
    assert (deleted.content, deleted.version) == ("Alice prefers window seats on long flights.", 1)
    assert not MemoryRevision.objects.filter(memory=deleted).exists()


def test_a_promotion_whose_nearest_duplicate_is_deleted_meanwhile_updates_the_next_one(world: World) -> None:
    doomed = create(
        world.acme.client, scope="user", user_id="alice", content="Alice prefers window seats on long flights."
    )
    other = create(
        world.acme.client, scope="user", user_id="alice", content="Alice prefers window seats on long flights, always"
    )

    job = _promote_while_deleting(world, doomed.json()["id"])

    assert job.status == "done" and job.created_ids == [] and job.updated_ids == [other.json()["id"]]
    assert _alive() == [PROMOTED]
    assert Memory.objects.get(pk=doomed.json()["id"]).content == "Alice prefers window seats on long flights."
