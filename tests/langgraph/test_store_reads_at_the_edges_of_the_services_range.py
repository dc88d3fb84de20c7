"""Calls LangGraph's InMemoryStore answers are answered so by AgentMemoryStore, where the service's range ends: a
"*" label is a label like any other (a wildcard only in list_namespaces' prefix and suffix, where it also matches
a "*" label), a max_depth past the most labels a namespace has cuts nothing, and an offset past the furthest the
service reads from is an empty page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from agent_memory_client.store import MAX_OFFSET, AgentMemoryStore
from langgraph.store.base import SearchOp
from langgraph.store.memory import InMemoryStore

from conftest import World

DEEP = tuple(f"l{number}" for number in range(150))  # more labels than the service's depth used to allow


@pytest.fixture
def stores(in_process: dict[str, Any], world: World) -> tuple[AgentMemoryStore, InMemoryStore]:
    store, reference = AgentMemoryStore(api_key=world.acme.raw_key, **in_process), InMemoryStore()
    for namespace in [("docs", "*"), ("docs", "a"), ("docs", "*", "x"), ("*",), DEEP]:
        for each in (store, reference):
            each.put(namespace, "k", {"at": "/".join(namespace)})
    return store, reference


def _values(items: list[Any]) -> list[Any]:
    return sorted((item.namespace, item.key, item.value) for item in items)


def test_a_star_label_is_put_read_searched_and_deleted_as_a_label(
    stores: tuple[AgentMemoryStore, InMemoryStore],
) -> None:
    store, reference = stores

    for each in (store, reference):
        each.put(("docs", "*"), "k2", {"at": "second"})
    for each in (store, reference):
        each.delete(("docs", "*", "x"), "k")

    got = [store.get(("docs", "*"), key) for key in ("k", "k2")]
    expected = [reference.get(("docs", "*"), key) for key in ("k", "k2")]
    assert all(got) and _values(got) == _values(expected)
    assert store.get(("docs", "*", "x"), "k") is None
    for prefix in [("docs", "*"), ("*",), ("docs",)]:
        assert _values(store.search(prefix)) == _values(reference.search(prefix)), prefix


def test_a_star_in_list_namespaces_prefix_or_suffix_matches_any_label_a_star_label_too(
    stores: tuple[AgentMemoryStore, InMemoryStore],
) -> None:
    store, reference = stores

    calls: list[dict[str, Any]] = [
        {"prefix": ("docs", "*")},
        {"suffix": ("*",)},
        {"prefix": ("*",), "max_depth": 1},
        {},
    ]
    for call in calls:
        assert store.list_namespaces(**call) == reference.list_namespaces(**call), call
    assert ("docs", "*") in store.list_namespaces(prefix=("docs", "*"))


def test_a_max_depth_past_the_services_range_cuts_as_langgraphs_store_does(
    stores: tuple[AgentMemoryStore, InMemoryStore],
) -> None:
    store, reference = stores

    for max_depth in (101, 149, 150, 10**9):
        found = store.list_namespaces(prefix=("l0",), max_depth=max_depth)
        assert found == reference.list_namespaces(prefix=("l0",), max_depth=max_depth), max_depth
    assert store.list_namespaces(max_depth=10**9) == reference.list_namespaces(max_depth=10**9)


def test_an_offset_past_the_furthest_the_service_reads_from_is_an_empty_page(
    stores: tuple[AgentMemoryStore, InMemoryStore],
) -> None:
    store, reference = stores

    for offset in (MAX_OFFSET + 1, 10**12):
        assert store.search(("docs",), offset=offset) == reference.search(("docs",), offset=offset) == []
        assert store.list_namespaces(offset=offset) == reference.list_namespaces(offset=offset) == []


def test_pages_of_a_large_limit_stop_at_the_furthest_offset_the_service_reads_from(
    in_process: dict[str, Any], world: World
) -> None:
    store = AgentMemoryStore(api_key=world.acme.raw_key, **in_process)
    now = datetime.now(UTC).isoformat()
    item: dict[str, Any] = {"namespace": ["docs"], "key": "k", "value": {}, "created_at": now, "updated_at": now}
    # The batch's exchanges, each answered with a full page, as by a tenant of more items than the offsets reach.
    plan = store._plan([SearchOp(("docs",), limit=5000, offset=MAX_OFFSET - 1500)])
    offsets: list[int] = []
    wire = next(plan)
    while True:
        offsets += [body["offset"] for body in wire]
        try:
            wire = plan.send([[item] * body["limit"] for body in wire])
        except StopIteration as done:
            results = done.value
            break

    assert offsets == [MAX_OFFSET - 1500, MAX_OFFSET - 500]  # not MAX_OFFSET + 500, which the service refuses
    assert len(results[0]) == 2000
