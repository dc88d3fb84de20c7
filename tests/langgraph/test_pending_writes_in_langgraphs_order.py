"""A checkpoint's pending writes come back in LangGraph's writes_sort_key order, (task_path, task_id, idx) as
Python compares them, whatever the database's collation: LangGraph rebuilds a DeltaChannel by applying a
step's writes in that order, as the run applied them.

The test database may well be created in the "C" locale, where the two orders agree. A database created in
en_US.UTF-8 (the pgvector image's default) gives its columns that collation: the test gives it to the pending
writes' text columns, with a collation from ICU or the system's en_US.UTF-8 locale, which `make test`
generates where it is missing (scripts/ensure-test-locale.sh; where it could not, the test fails saying how)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint, writes_sort_key

from conftest import World
from langgraph_app.models import PendingWrite

COLLATION = "lg_test_en_us"
# Task paths as LangGraph writes them for two parallel nodes whose names differ in case: code-point order puts
# "Beta" first ("B" < "a"), a language's order "alpha" (case and punctuation weigh less than letters).
TASKS = [("task-2", "~__pregel_pull, alpha"), ("task-1", "~__pregel_pull, Beta"), ("task-0", "~__pregel_pull, end")]


def _collation_of_another_order() -> bool:
    """Create COLLATION, an en-US one; False where the server has neither ICU nor that locale."""
    attempts = [
        f"CREATE COLLATION {COLLATION} (provider = icu, locale = 'en-US')",
        f"CREATE COLLATION {COLLATION} (provider = libc, locale = 'en_US.UTF-8')",
        f"CREATE COLLATION {COLLATION} (provider = libc, locale = 'en_US.utf8')",
    ]
    for sql in attempts:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql)
                cursor.execute(f"SELECT 'alpha' < 'Beta' COLLATE {COLLATION}")
                if cursor.fetchone()[0]:
                    return True
                raise DatabaseError("a collation in code-point order")  # undone with its savepoint
        except DatabaseError:
            continue
    return False


@pytest.fixture
def en_us_writes(db: None) -> None:
    """The pending writes' text columns in en_US order, as in a database created with that locale (undone with
    the test's transaction)."""
    if not _collation_of_another_order():
        # `make test` generates the locale (scripts/ensure-test-locale.sh); elsewhere the test says how.
        pytest.fail(
            "the database server has neither ICU nor an en_US.UTF-8 locale "
            "(generate it as root: localedef -i en_US -f UTF-8 en_US.UTF-8)"
        )
    table = PendingWrite._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {table} ALTER COLUMN task_path TYPE varchar(512) COLLATE {COLLATION}, "
            f"ALTER COLUMN task_id TYPE varchar(128) COLLATE {COLLATION}"
        )


@pytest.fixture
def saver(en_us_writes: None, in_process: dict[str, Any], world: World) -> Iterator[AgentMemorySaver]:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process)
    yield saver
    saver.close()


def test_pending_writes_come_back_in_writes_sort_key_order_on_a_database_in_en_us(saver: AgentMemorySaver) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "lg-delta", "checkpoint_ns": ""}}
    saved = saver.put(config, empty_checkpoint(), {"source": "loop", "step": 0}, {})
    for task_id, task_path in TASKS:
        name = task_path.rsplit(" ", 1)[-1]
        saver.put_writes(saved, [("log", [name]), ("branch", name)], task_id, task_path)
    expected = [
        (task_id, channel, value)
        for task_id, task_path in sorted(TASKS, key=lambda task: writes_sort_key(task[1], task[0]))
        for channel, value in (("log", [task_path.rsplit(" ", 1)[-1]]), ("branch", task_path.rsplit(" ", 1)[-1]))
    ]

    got = saver.get_tuple(config)
    [listed] = saver.list(config)

    assert got is not None and got.pending_writes is not None
    assert [value for _, channel, value in got.pending_writes if channel == "log"] == [["Beta"], ["alpha"], ["end"]]
    assert got.pending_writes == expected
    assert listed.pending_writes == expected


def test_the_pending_writes_are_ordered_in_code_point_order_whatever_the_columns_collation(
    in_process: dict[str, Any], world: World
) -> None:
    # Where the server has no other collation (the embedded one: no ICU, no en_US locale) the test above cannot
    # run; this one checks, on every server, that the read names the code-point collation for both text keys.
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process)
    config: RunnableConfig = {"configurable": {"thread_id": "lg-order", "checkpoint_ns": ""}}
    saved = saver.put(config, empty_checkpoint(), {"source": "loop", "step": 0}, {})
    saver.put_writes(saved, [("log", ["x"])], "task-1", "~__pregel_pull, x")

    with CaptureQueriesContext(connection) as queries:
        got = saver.get_tuple(config)
    saver.close()

    assert got is not None and got.pending_writes == [("task-1", "log", ["x"])]
    reads = [query["sql"] for query in queries.captured_queries if PendingWrite._meta.db_table in query["sql"]]
    assert reads and all('task_path COLLATE "C", pw.task_id COLLATE "C"' in sql for sql in reads), reads
