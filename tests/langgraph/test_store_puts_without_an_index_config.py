"""A store without an index config embeds nothing, a put given index paths included, as LangGraph's
InMemoryStore and PostgresStore embed only with one: it ranks no query either, so such an embedding would be
paid for and never used."""

from __future__ import annotations

from typing import Any

from agent_memory_client.store import AgentMemoryStore

from conftest import World
from langgraph_app.models import StoreItem
from memories_app.tests.conftest import FakeOpenAI, fake_openai  # noqa: F401 - the fixture


def test_a_store_without_an_index_config_embeds_no_put_given_index_paths(
    in_process: dict[str, Any],
    world: World,
    fake_openai: FakeOpenAI,  # noqa: F811
) -> None:
    store = AgentMemoryStore(api_key=world.acme.raw_key, **in_process)

    store.put(("docs",), "cats", {"text": "all about cats"}, index=["text"])
    store.put(("docs",), "dogs", {"text": "all about dogs"}, index=["$"])

    assert fake_openai.embeddings_calls() == []
    assert {item.key: item.embedding for item in StoreItem.objects.all()} == {"cats": None, "dogs": None}
