"""Every read counted in Redis reaches access_count once: when two flushes overlap (the beat's every 30 s and the
eviction job's own), when a flush loses its database connection before its commit, and when Redis refuses the
delete that follows its commit.

The overlap is made deterministic with a table lock: this test's connection holds the memories table, so the
first flush (on its own thread and connection) claims the counts and then waits in its UPDATE."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection, transaction

from conftest import World
from memories_app import background
from memories_app.models import Memory
from memories_app.tests.conftest import create
from memory_admin.health import redis_client

pytestmark = pytest.mark.django_db(transaction=True)


def _memory_read_three_times(world: World) -> str:
    memory = create(world.acme.client, scope="user", user_id="alice", content="Alice likes green tea.").json()
    for _ in range(3):
        found = world.acme.client.post(
            "/api/v1/memories/search", {"query": "green tea", "user_id": "alice"}, format="json"
        )
        assert [hit["memory"]["id"] for hit in found.json()["results"]] == [memory["id"]], found.json()
    return str(memory["id"])


def _access_count(memory_id: str) -> int:
    return Memory.objects.get(pk=memory_id).access_count


def _waiting_for_our_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        )
        return int(cursor.fetchone()[0])


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def _flush_on_its_own_thread(outcome: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            outcome.append(background.flush_access_stats())
        except BaseException as exc:
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@contextmanager
def _memories_locked() -> Iterator[None]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE memories_app_memory IN SHARE MODE")
        yield


def test_two_overlapping_flushes_add_each_counted_read_once(world: World) -> None:
    memory_id = _memory_read_three_times(world)
    first: list[Any] = []
    second: list[Any] = []

    with _memories_locked():
        first_flush = _flush_on_its_own_thread(first)
        _wait_until(lambda: _waiting_for_our_locks() == 1, "the first flush waits in its UPDATE")
        claimed = _claimed_batches()
        second_flush = _flush_on_its_own_thread(second)
        # The second flush finds the first one's batch claimed: it leaves it and has nothing of its own to add.
        _wait_until(lambda: not second_flush.is_alive() or _waiting_for_our_locks() > 1, "the second flush ends")
        assert len(claimed) == 1 and _claimed_batches() == claimed
    first_flush.join(timeout=30)
    second_flush.join(timeout=30)

    assert _access_count(memory_id) == 3
    assert (first, second) == ([1], [0])
    assert background.flush_access_stats() == 0 and _access_count(memory_id) == 3


def test_the_counts_of_a_flush_whose_connection_died_before_its_commit_are_added_by_the_next_flush(
    world: World,
) -> None:
    memory_id = _memory_read_three_times(world)
    dead: list[Any] = []

    with _memories_locked():
        flush = _flush_on_its_own_thread(dead)
        _wait_until(lambda: _waiting_for_our_locks() == 1, "the flush waits in its UPDATE")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE NOT granted"
                " AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
    flush.join(timeout=30)
    assert len(dead) == 1 and isinstance(dead[0], Exception), dead
    assert _access_count(memory_id) == 0

    assert background.flush_access_stats() == 1
    assert _access_count(memory_id) == 3
    assert background.flush_access_stats() == 0 and _access_count(memory_id) == 3


def test_the_counts_of_a_flush_that_dies_after_another_flush_ran_meanwhile_are_added_by_the_next_flush(
    world: World,
) -> None:
    memory_id = _memory_read_three_times(world)
    dead: list[Any] = []
    meanwhile: list[Any] = []

    with _memories_locked():
        flush = _flush_on_its_own_thread(dead)
        _wait_until(lambda: _waiting_for_our_locks() == 1, "the flush waits in its UPDATE")
        other = _flush_on_its_own_thread(meanwhile)
        other.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE NOT granted"
                " AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
    flush.join(timeout=30)
    assert meanwhile == [0]
    assert len(dead) == 1 and isinstance(dead[0], Exception), dead

    assert background.flush_access_stats() == 1
    assert _access_count(memory_id) == 3


def _claimed_batches() -> list[bytes]:
    return sorted(redis_client().scan_iter(match="mem:memories:access:flushing:*"))


def test_the_counts_of_a_flush_that_committed_but_could_not_delete_them_are_not_added_again(world: World) -> None:
    memory_id = _memory_read_three_times(world)
    outcome: list[Any] = []

    try:
        with _memories_locked():
            flush = _flush_on_its_own_thread(outcome)
            _wait_until(lambda: _waiting_for_our_locks() == 1, "the flush waits in its UPDATE")
            # Redis refuses every write from here on (NOREPLICAS): the flush commits, then fails to delete.
            redis_client().config_set("min-replicas-to-write", 1)
        flush.join(timeout=30)
    finally:
        redis_client().config_set("min-replicas-to-write", 0)
    assert _access_count(memory_id) == 3, outcome

    background.flush_access_stats()

    assert _access_count(memory_id) == 3
    assert redis_client().keys("mem:memories:access*") == []
