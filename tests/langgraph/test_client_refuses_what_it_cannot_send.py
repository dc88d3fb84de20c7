"""What the clients refuse before sending anything: a value JSON has no type for (a TypeError, as LangGraph's
PostgresStore and PostgresSaver raise, not its str() stored in its place), and a base_url that is not the
service's http(s) address (a ValueError, not a request to localhost:80 with the API key, nor calls that all
miss the API)."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from agent_memory_client.client import AsyncMemoryClient, MemoryClient
from agent_memory_client.store import AgentMemoryStore
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from pydantic import BaseModel

from conftest import World
from langgraph_app.models import StoreItem
from memories_app.models import Memory


class Prefs(BaseModel):
    theme: str = "dark"


NOT_JSON = {
    "bytes": b"\x89PNG\r\n",
    "datetime": datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC),
    "uuid": uuid.UUID(int=1),
    "decimal": decimal.Decimal("10.50"),
    "set": {"a"},
    "pydantic model": Prefs(),
}


@pytest.mark.parametrize("value", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_a_store_value_that_is_not_json_is_a_type_error_and_nothing_is_stored(
    in_process: dict[str, Any], world: World, value: Any
) -> None:
    store = AgentMemoryStore(api_key=world.acme.raw_key, **in_process)

    with pytest.raises(TypeError):
        store.put(("prefs",), "alice", {"value": value})

    assert not StoreItem.objects.exists()


def test_a_tuple_in_a_store_value_is_stored_as_a_list_as_json_writes_it(
    in_process: dict[str, Any], world: World
) -> None:
    store = AgentMemoryStore(api_key=world.acme.raw_key, **in_process)

    store.put(("prefs",), "alice", {"size": (800, 600)})

    item = store.get(("prefs",), "alice")
    assert item is not None and item.value == {"size": [800, 600]}


@pytest.mark.parametrize("value", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_checkpoint_metadata_that_is_not_json_is_a_type_error_and_nothing_is_saved(
    in_process: dict[str, Any], world: World, value: Any
) -> None:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process)
    config: RunnableConfig = {"configurable": {"thread_id": "lg-meta", "checkpoint_ns": ""}}

    with pytest.raises(TypeError):
        saver.put(config, empty_checkpoint(), {"source": "input", "step": -1, "seen": value}, {})  # type: ignore[typeddict-unknown-key]

    assert saver.get_tuple(config) is None


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_an_infinity_in_a_store_value_or_checkpoint_metadata_is_a_value_error_and_nothing_is_saved(
    in_process: dict[str, Any], world: World, number: float
) -> None:
    store = AgentMemoryStore(api_key=world.acme.raw_key, **in_process)
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process)
    config: RunnableConfig = {"configurable": {"thread_id": "lg-nan", "checkpoint_ns": ""}}

    with pytest.raises(ValueError, match="JSON"):
        store.put(("prefs",), "alice", {"threshold": number})
    with pytest.raises(ValueError, match="JSON"):
        saver.put(config, empty_checkpoint(), {"source": "input", "step": -1, "threshold": number}, {})  # type: ignore[typeddict-unknown-key]

    assert not StoreItem.objects.exists()
    assert saver.get_tuple(config) is None


def test_memory_metadata_that_is_not_json_is_a_type_error_and_nothing_is_stored(
    in_process: dict[str, Any], world: World
) -> None:
    client = MemoryClient(in_process["base_url"], world.acme.raw_key, transport=in_process["transport"])
    seen = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)

    with pytest.raises(TypeError):
        client.create_memory(user_id="alice", scope="user", content="likes trains", metadata={"seen": seen})

    assert not Memory.objects.exists()


@pytest.mark.parametrize(
    "base_url",
    [
        "127.0.0.1:8000",  # read as the scheme "127.0.0.1" and the path "8000": it went to localhost:80
        "localhost:8000",
        "ftp://127.0.0.1:8000",  # sent as plain HTTP
        "http://",
        "http:///api",
        "http://127.0.0.1:port",
        "http://127.0.0.1:8000/api/v1",  # the client adds /api/v1: every call would be "No such endpoint."
        "https://memory.example/agents/api/v1/",
    ],
)
def test_a_base_url_that_is_not_the_services_http_address_is_a_value_error_in_every_client(base_url: str) -> None:
    for make in (
        lambda: MemoryClient(base_url, "mk_test"),
        lambda: AsyncMemoryClient(base_url, "mk_test"),
        lambda: AgentMemorySaver(base_url=base_url, api_key="mk_test"),
        lambda: AgentMemoryStore(base_url=base_url, api_key="mk_test"),
    ):
        with pytest.raises(ValueError, match="base_url"):
            make()


def test_a_base_url_may_carry_a_path_below_which_the_service_is_served() -> None:
    client = MemoryClient("https://memory.example:8443/agents/", "mk_test")

    assert client.base_url == "https://memory.example:8443/agents"
    assert client._url("whoami") == "https://memory.example:8443/agents/api/v1/whoami"
