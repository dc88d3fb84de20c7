"""The store's filters and namespace listing run in SQL, so limit and offset page through what matches; each
filter answers as LangGraph's own InMemoryStore decides it (where that store raises instead of deciding — an
ordering on a missing field or on text — the item does not match, and text orders by code point as in
PostgresStore). Reads that store answers and the service refuses (a limit of 0 or over what one operation
answers, a blank query, a depth of 0) are answered as it answers them."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from agent_memory_client.errors import ApiError
from agent_memory_client.store import AgentMemoryStore
from django.db import connection
from langgraph.store.base import PutOp
from langgraph.store.memory import InMemoryStore, _compare_values

from conftest import World
from langgraph_app import store as store_service
from langgraph_app.models import StoreItem
from memory_admin import sql
from tests.langgraph.conftest import run_async
from tests.servers import ServerProcess

ITEMS: dict[str, dict[str, Any]] = {
    "a": {"rank": 1, "name": "apple", "meta": {"lang": "en", "year": 2021}, "tags": ["x", "y"]},
    "b": {"rank": 9, "name": "Banana", "meta": {"lang": "de", "year": 2023}},
    "c": {"rank": 10, "name": "cherry", "meta": {"lang": "en", "year": 2024}, "done": True},
    "d": {"rank": 2.5, "name": "date", "status": "open"},
    "e": {"rank": "7", "name": "elder", "meta": {"lang": "en"}},  # a numeric string
    "f": {"rank": 100, "name": "fig", "status": "done", "tags": ["x"]},
    "g": {"name": "grape", "status": None},
    "h": {"rank": -3, "name": "Ähre", "meta": {"lang": "en", "year": 2020}},
}

FILTERS: list[dict[str, Any]] = [
    {"rank": {"$gt": 5}},  # 10 > 9 as numbers, not as text; "7" counts as 7
    {"rank": {"$gte": 2.5, "$lt": 10}},
    {"rank": {"$lte": 1}},
    {"rank": 10},
    {"rank": 10.0},
    {"rank": {"$eq": 9}},
    {"rank": {"$ne": 9}},  # missing fields are null, so they differ from 9
    {"status": {"$ne": "done"}},
    {"status": None},
    {"meta": {"lang": "en"}},  # a nested object matches field by field
    {"meta": {"year": {"$gte": 2021}}},
    {"meta": {"lang": "en", "year": {"$lt": 2022}}},
    {"tags": ["x"]},
    {"done": True},
    {"name": "fig", "status": "done"},
]


@pytest.fixture
def store(in_process: dict[str, Any], world: World) -> AgentMemoryStore:
    store = AgentMemoryStore(api_key=world.acme.raw_key, **in_process)
    for key, value in ITEMS.items():
        store.put(("docs", "fruit"), key, value)
    return store


def _in_memory_store_matches(value: dict[str, Any], conditions: dict[str, Any]) -> bool:
    """InMemoryStore's own matching of one item; where it raises (float() of text or of a missing field)."""
    try:
        return all(_compare_values(value.get(field), expected) for field, expected in conditions.items())
    except (TypeError, ValueError):
        return False


@pytest.mark.parametrize("conditions", FILTERS, ids=[str(conditions) for conditions in FILTERS])
def test_each_filter_matches_the_items_langgraphs_in_memory_store_matches(
    store: AgentMemoryStore, conditions: dict[str, Any]
) -> None:
    ours = {item.key for item in store.search(("docs",), filter=conditions, limit=100)}
    theirs = {key for key, value in ITEMS.items() if _in_memory_store_matches(value, conditions)}
    assert ours == theirs


def test_text_orders_by_code_point_and_only_against_text(store: AgentMemoryStore) -> None:
    def keys(conditions: dict[str, Any]) -> set[str]:
        return {item.key for item in store.search(("docs",), filter=conditions, limit=100)}

    assert keys({"name": {"$gt": "b"}}) == {"c", "d", "e", "f", "g", "h"}  # not "Banana" ('B' < 'b'), "Ähre" yes
    assert keys({"name": {"$lt": "Z"}}) == {"b"}
    assert keys({"status": {"$gte": "done"}}) == {"d", "f"}  # "open", "done"; null and missing never
    assert keys({"rank": {"$gt": "1"}}) == {"e"}  # a text bound meets only text values: "7", not the numbers


def test_pages_of_a_filtered_search_are_disjoint_full_and_cover_every_match(store: AgentMemoryStore) -> None:
    for index in range(25):
        store.put(("docs", "bulk"), f"n{index:02d}", {"n": index, "parity": index % 2})
    conditions = {"n": {"$gte": 3}, "parity": 1}  # 11 of the 25 (3, 5, ..., 23); the fruit have no "n"

    pages = [store.search(("docs",), filter=conditions, limit=4, offset=offset) for offset in (0, 4, 8, 12)]

    assert [len(page) for page in pages] == [4, 4, 3, 0]
    keys = [item.key for page in pages for item in page]
    assert len(keys) == len(set(keys))
    assert set(keys) == {f"n{index:02d}" for index in range(3, 25, 2)}
    everything = [item.key for item in store.search(("docs",), filter=conditions, limit=100)]
    assert keys == everything  # the same order as one page holding them all


def test_a_semantic_search_with_a_filter_pages_in_rank_order(in_process: dict[str, Any], world: World) -> None:
    store = AgentMemoryStore(api_key=world.acme.raw_key, index={"fields": ["text"]}, **in_process)
    texts = ["dogs barking in the park", "dogs and puppies", "cats on the sofa", "tax invoices", "dog walks"]
    for index, text in enumerate(texts):
        store.put(("kb",), f"k{index}", {"text": text, "n": index})
    store.put(("kb",), "plain", {"text": "dogs", "n": 9}, index=False)

    whole = store.search(("kb",), query="dogs", filter={"n": {"$ne": 3}}, limit=10)
    pages = [store.search(("kb",), query="dogs", filter={"n": {"$ne": 3}}, limit=2, offset=o) for o in (0, 2, 4)]

    assert [item.key for page in pages for item in page] == [item.key for item in whole]
    assert {item.key for item in whole} == {"k0", "k1", "k2", "k4", "plain"}
    assert whole[-1].key == "plain" and whole[-1].score is None


def test_reads_the_in_memory_store_answers_with_a_zero_limit_blank_query_or_zero_depth_are_answered_alike(
    in_process: dict[str, Any], world: World
) -> None:
    store = AgentMemoryStore(api_key=world.acme.raw_key, **in_process)
    reference = InMemoryStore()
    for each in (store, reference):
        each.put(("e", "1"), "k1", {"text": "hello"})
        each.put(("e", "2"), "k2", {"text": "world"})
    searches: list[dict[str, Any]] = [{"query": ""}, {"query": "  "}, {"limit": 0}, {"limit": 0, "offset": 1}]
    listings: list[dict[str, Any]] = [
        {"limit": 0},
        {"max_depth": 0},
        {"prefix": ("e",), "max_depth": 0},
        {"prefix": ("none",), "max_depth": 0},
        {"max_depth": 0, "offset": 1},
    ]

    for call in searches:
        assert sorted(item.key for item in store.search(("e",), **call)) == sorted(
            item.key for item in reference.search(("e",), **call)
        ), call
    for call in listings:
        assert store.list_namespaces(**call) == reference.list_namespaces(**call), call


def test_a_limit_over_what_one_operation_answers_is_read_in_pages(service: ServerProcess, world: World) -> None:
    store = AgentMemoryStore(base_url=service.url, api_key=world.acme.raw_key)
    namespaces = [("many", f"n{number:04d}") for number in range(1003)]
    store.batch([PutOp(namespace, "k", {"n": number}) for number, namespace in enumerate(namespaces)])

    found = store.search(("many",), limit=5000)
    found_from_one = store.search(("many",), limit=1001, offset=1)
    listed = store.list_namespaces(prefix=("many",), limit=5000)
    listed_some = store.list_namespaces(prefix=("many",), limit=1002, offset=1)

    async def read_async() -> tuple[list[Any], list[Any]]:
        try:
            return await store.asearch(("many",), limit=2000), await store.alist_namespaces(limit=1500)
        finally:
            await store.async_client.aclose()

    found_async, listed_async = run_async(read_async)
    assert len({item.namespace for item in found}) == len(found) == 1003
    assert [item.namespace for item in found_from_one] == [item.namespace for item in found[1:1002]]
    assert listed == listed_async == namespaces
    assert listed_some == namespaces[1:1003]
    assert {item.namespace for item in found_async} == set(namespaces)
    store.client.close()


def test_an_unknown_filter_operator_is_refused_with_400(store: AgentMemoryStore) -> None:
    with pytest.raises(ApiError) as refused:
        store.search(("docs",), filter={"rank": {"$in": [1, 2]}})
    assert refused.value.status == 400


def test_namespaces_page_in_label_order_after_prefix_suffix_and_depth(in_process: dict[str, Any], world: World) -> None:
    store = AgentMemoryStore(api_key=world.acme.raw_key, **in_process)
    reference = InMemoryStore()
    namespaces = [("a", "b", "c"), ("a", "b", "d"), ("a-c", "b"), ("a", "x"), ("B", "b", "c"), ("z", "b", "c")]
    for namespace in namespaces:
        store.put(namespace, "k", {"v": 1})
        reference.put(namespace, "k", {"v": 1})
    calls: list[dict[str, Any]] = [
        {},
        {"prefix": ("a",)},
        {"suffix": ("b", "c")},
        {"prefix": ("*", "b")},
        {"suffix": ("*",), "max_depth": 1},
        {"max_depth": 2},
        {"max_depth": 2, "limit": 2, "offset": 1},
        {"limit": 2, "offset": 2},
        {"prefix": ("a", "*", "c"), "suffix": ("c",)},
    ]
    for call in calls:
        assert store.list_namespaces(**call) == reference.list_namespaces(**call), call


def test_a_namespace_prefix_search_finds_the_namespace_and_those_below_it_as_langgraphs_store_does(
    in_process: dict[str, Any], world: World
) -> None:
    store = AgentMemoryStore(api_key=world.acme.raw_key, **in_process)
    reference = InMemoryStore()
    # Labels that begin with another label, with characters just before and after "." (0x2e) in byte order.
    namespaces = [("u1",), ("u1", "a"), ("u1", "a", "b"), ("u1-x",), ("u1!", "a"), ("u1/x",), ("u10",), ("u",), ("é",)]
    for namespace in namespaces:
        store.put(namespace, "k", {"v": "/".join(namespace)})
        reference.put(namespace, "k", {"v": "/".join(namespace)})
    for prefix in [("u1",), ("u1", "a"), ("u",), ("u1-x",), ("é",), ("u1", "a", "b", "c")]:
        found = sorted(item.value["v"] for item in store.search(prefix, limit=100))
        expected = sorted(item.value["v"] for item in reference.search(prefix, limit=100))
        assert found == expected, prefix


def test_a_namespace_prefix_search_reads_a_range_of_the_prefix_index_even_in_a_generic_plan(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prepared statements get generic plans (planned without the parameters' values), where a prefix match of a
    parameter (LIKE, starts_with) cannot become an index condition: the search would read every item of the tenant."""
    statements: list[str] = []

    def recording(sql: str, params: Any, *, prepare: bool = True) -> list[tuple[Any, ...]]:
        statements.append(sql)
        return original(sql, params, prepare=prepare)

    original = sql.run  # what the store module calls
    monkeypatch.setattr(store_service, "run", recording)
    search_op = store_service.Op("search", {"namespace_prefix": ["users", "alice"]})
    store_service.run_batch(tenant=world.acme.tenant, ops=[search_op])
    [search] = [sql for sql in statements if sql.lstrip().startswith("SELECT")]
    positions = itertools.count(1)
    numbered = re.sub(r"%s", lambda _: f"${next(positions)}", search)

    with connection.cursor() as cursor:
        # A tenant with 20,000 items in 400 namespaces, so that reading all of them is the plan to beat.
        cursor.execute(
            f"INSERT INTO {StoreItem._meta.db_table} (tenant_id, prefix, key, value, embedding_model, created_at, "  # noqa: S608
            "updated_at) SELECT %s, 'users.u' || (n %% 400), 'k' || n, '{}', '', now(), now() "
            "FROM generate_series(1, 20000) AS n",
            [world.acme.tenant.pk],
        )
        cursor.execute(f"ANALYZE {StoreItem._meta.db_table}")
        cursor.execute(f"EXPLAIN (GENERIC_PLAN) {numbered}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    conditions = [line for line in plan.splitlines() if "Index Cond" in line and "~>=~" in line and "~<~" in line]
    assert conditions, plan  # the range bounds the index read (not a filter over every item of the tenant)
    assert "lg_store_prefix_pattern" in plan, plan
