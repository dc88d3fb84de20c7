"""Index paths follow LangGraph's syntax (`chunks[*].text`, `tags[0]`, `revisions[-1].changes`, `{a,b}`, `*`):
the service embeds the texts LangGraph's own stores would, so a semantic search ranks what InMemoryStore
ranks. (The service keeps one vector per item, of its texts joined; InMemoryStore one per text. The items here
have one text each, or texts that rank alike either way.)"""

from __future__ import annotations

from typing import Any

import pytest
from agent_memory_client.store import AgentMemoryStore
from langgraph.store.memory import InMemoryStore

from conftest import World
from langgraph_app.store import index_text, texts_at_path
from memories_app.embeddings import get_embedder

PUTS: list[tuple[str, dict[str, Any], list[str] | None]] = [
    ("plain", {"text": "python tutorial"}, None),
    ("chunks", {"chunks": [{"text": "python programming guide"}], "text": "unrelated"}, ["chunks[*].text"]),
    ("first-tag", {"tags": ["python guide", "cooking"]}, ["tags[0]"]),
    ("last-revision", {"revisions": [{"changes": "typescript"}, {"changes": "programming in python"}]},
     ["revisions[-1].changes"]),
    ("fields", {"a": {"b": "guide to programming python"}, "c": "ignored"}, ["{a.b}"]),
    ("everything", {"x": {"y": "gardening tips"}}, ["*.y"]),
    ("nothing-at-path", {"text": "python programming guide"}, ["missing[0]"]),
]  # fmt: skip


@pytest.fixture
def stores(in_process: dict[str, Any], world: World) -> tuple[InMemoryStore, AgentMemoryStore]:
    embedder = get_embedder()
    memory = InMemoryStore(
        index={"dims": embedder.dimensions, "embed": lambda texts: embedder.embed(list(texts)), "fields": ["text"]}
    )
    service = AgentMemoryStore(api_key=world.acme.raw_key, index={"fields": ["text"]}, **in_process)
    for store in (memory, service):
        for key, value, index in PUTS:
            store.put(("docs",), key, value, index=index)
    return memory, service


@pytest.mark.parametrize("query", ["python programming guide", "typescript", "gardening tips"])
def test_a_search_ranks_items_indexed_by_array_and_multi_field_paths_as_in_memory_store_does(
    stores: tuple[InMemoryStore, AgentMemoryStore], query: str
) -> None:
    memory, service = stores

    expected = [(item.key, item.score) for item in memory.search(("docs",), query=query, limit=10)]
    found = [(item.key, item.score) for item in service.search(("docs",), query=query, limit=10)]

    # Equal scores may come in another order (the service breaks ties by key); the vectors are float4 there.
    def ranking(results: list[tuple[str, float | None]]) -> list[tuple[str, float | None]]:
        rounded = [(key, None if score is None else round(score, 4)) for key, score in results]
        return sorted(rounded, key=lambda result: (result[1] is None, -(result[1] or 0), result[0]))

    assert ranking(found) == ranking(expected)
    assert [key for key, _ in found] == [key for key, _ in ranking(found)]
    assert found[-1] == ("nothing-at-path", None)  # nothing to embed at its path: unranked, last
    assert [key for key, score in found if score] == [key for key, score in expected if score]


def test_index_paths_select_the_texts_langgraph_selects() -> None:
    value = {
        "chunks": [{"text": "one"}, {"text": "two"}, {"other": 3}],
        "tags": ["first", "last"],
        "revisions": [{"changes": {"b": 1, "a": [True, None]}}],
        "a": "x",
        "b": {"c": 2.5},
    }

    assert texts_at_path(value, "chunks[*].text") == ["one", "two"]
    assert texts_at_path(value, "tags[0]") == ["first"] and texts_at_path(value, "tags[-1]") == ["last"]
    assert texts_at_path(value, "tags[2]") == [] and texts_at_path(value, "a[0]") == []
    assert texts_at_path(value, "revisions[-1].changes") == ['{"a": [true, null], "b": 1}']
    assert texts_at_path(value, "{a, b.c, missing}") == ["x", "2.5"]
    assert texts_at_path(value, "b.*") == ["2.5"]
    assert index_text(value, ["tags[*]", "{a}"]) == "first\nlast\nx"
