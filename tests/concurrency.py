"""Races in tests: callables run at the same moment, each in its own thread with its own database connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection

# How long a held lock lasts at most if what the test waits for never comes (the test then fails on its own).
HELD_AT_MOST_SECONDS = 40


def at_once(*work: Callable[[], Any], timeout: float = 120) -> list[Any]:
    """Run each callable in its own thread, all released together; their results in order (an exception a
    callable raised is its result, so the test's assertions show it). Each thread closes its connection."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work[index]()
        except BaseException as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results


def waiting_for_a_lock() -> bool:
    """Whether some connection is waiting for a lock right now (a test polls it to know its racer got there)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return bool(cursor.fetchone()[0])


def wait_until_blocked(
    table: str | None = None, *, what: str = "the other connection", timeout: float = 20, waiters: int = 1
) -> None:
    """Wait until some connection waits for a lock (on `table`, or on anything; `waiters` locks waited for,
    in all); AssertionError naming `what` after `timeout` seconds. A test holds a lock, starts the work in a
    thread, and knows here it got that far."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND (%s::text IS NULL OR relation = %s::regclass)",
                [table, table],
            )
            if cursor.fetchone()[0] >= waiters:
                return
            time.sleep(0.02)
    raise AssertionError(f"{what} never waited for the lock")


class HeldLock:
    """A table lock another connection holds; `released` is set once that connection let it go."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.locked = threading.Event()
        self.released = threading.Event()


def second_connection() -> psycopg.Connection[Any]:
    """A connection of its own to the test database, outside Django's (its transactions are its own)."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
    )


def _hold(table: str, held: HeldLock, seconds: float) -> None:
    with second_connection() as holder:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        held.locked.set()
        held.release.wait(seconds)
    held.released.set()


@contextmanager
def access_exclusive(table: str, *, for_seconds: float | None = None) -> Iterator[HeldLock]:
    """`table` held in ACCESS EXCLUSIVE mode (as a migration holds it) by another connection until the block
    ends, or for `for_seconds` when given, and never past HELD_AT_MOST_SECONDS."""
    held = HeldLock()
    seconds = HELD_AT_MOST_SECONDS if for_seconds is None else min(for_seconds, HELD_AT_MOST_SECONDS)
    holder = threading.Thread(target=_hold, args=(table, held, seconds))
    holder.start()
    assert held.locked.wait(10)
    try:
        yield held
    finally:
        if for_seconds is None:
            held.release.set()
        holder.join()
