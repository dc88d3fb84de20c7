"""Concurrent saves to one session, each on its own database connection: no lost save, no duplicate
sequence, one clean 409 per loser of a race for the same sequence."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from checkpoints_app.models import Checkpoint
from conftest import World
from tests.clients import AgentClient
from tests.concurrency import at_once

from .helpers import acme_session, save, url

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def client_of(world: World) -> APIClient:
    """A client per thread: test clients are not meant to be shared between threads."""
    client = AgentClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.acme.raw_key}")
    return client


def in_threads(work: Callable[[int], Any]) -> list[Any]:
    """work(i) in THREADS threads released together, each on its own database connection."""
    return at_once(*(functools.partial(work, index) for index in range(THREADS)))


def test_concurrent_saves_are_all_kept_with_distinct_gap_free_sequences(world: World) -> None:
    session = acme_session(world)
    per_thread = 5

    def work(index: int) -> list[int]:
        return [
            save(client_of(world), session, node_id=f"agent-{index}", state={"agent": index, "step": step}).status_code
            for step in range(per_thread)
        ]

    statuses = in_threads(work)

    assert all(code == 201 for codes in statuses for code in codes)
    sequences = sorted(Checkpoint.objects.filter(session=session).values_list("sequence", flat=True))
    assert sequences == list(range(1, THREADS * per_thread + 1))
    report = world.acme.client.get(url(session, "/verify")).json()
    assert (report["valid"], report["checked"], report["first_bad_link"]) == (True, THREADS * per_thread, None)


def test_a_race_for_the_same_sequence_has_one_winner_and_409_for_the_others(world: World) -> None:
    session = acme_session(world)

    def work(index: int) -> int:
        status: int = save(client_of(world), session, state={"writer": index}, sequence=1).status_code
        return status

    statuses = in_threads(work)

    assert sorted(statuses) == [201] + [409] * (THREADS - 1)
    assert Checkpoint.objects.filter(session=session).count() == 1


def test_a_race_of_identical_retries_stores_one_checkpoint_and_answers_each_with_it(world: World) -> None:
    session = acme_session(world)

    def work(index: int) -> tuple[int, str]:
        response = save(client_of(world), session, state={"same": True}, sequence=1)
        return response.status_code, response.json()["id"]

    results = in_threads(work)

    assert sorted(code for code, _ in results) == [200] * (THREADS - 1) + [201]
    assert len({checkpoint_id for _, checkpoint_id in results}) == 1
