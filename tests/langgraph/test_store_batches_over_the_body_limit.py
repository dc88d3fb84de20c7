"""A store batch whose operations add up to more than one request may carry goes in requests under the client's
max_request_bytes, in order, as the checkpointer's saves do: LangGraph's InMemoryStore and PostgresStore store
such a batch whole, and five separate puts of its items work. An operation the service cannot take even alone is
its 413."""

from __future__ import annotations

import pytest
from agent_memory_client.client import encode_body
from agent_memory_client.errors import ApiError
from agent_memory_client.store import AgentMemoryStore
from langgraph.store.base import GetOp, Item, PutOp, Result, SearchOp

from conftest import World
from tests.langgraph.conftest import run_async
from tests.servers import ServerProcess

SERVICE_LIMIT = 1024 * 1024  # API_MAX_BODY_BYTES's default
LARGE = "x" * 300_000  # each far under the limit, five of them over it


def _ops(namespace: tuple[str, ...]) -> list[PutOp | GetOp | SearchOp]:
    puts: list[PutOp | GetOp | SearchOp] = [PutOp(namespace, f"doc-{n}", {"n": n, "text": LARGE}) for n in range(5)]
    return [
        GetOp(namespace, "doc-0"),
        *puts[:3],
        GetOp(namespace, "doc-2"),
        *puts[3:],
        SearchOp(namespace, limit=10),
        PutOp(namespace, "doc-1", None),
        GetOp(namespace, "doc-1"),
    ]


@pytest.fixture
def store(service: ServerProcess, world: World) -> AgentMemoryStore:
    return AgentMemoryStore(base_url=service.url, api_key=world.acme.raw_key)


def _sent_bodies(store: AgentMemoryStore) -> list[int]:
    """The sizes of the bodies the store's clients send from now on."""
    sizes: list[int] = []
    send, asend = store.client.request, store.async_client.request

    def measured(method: str, path: str, **options: object) -> object:
        sizes.append(len(encode_body(options["body"])))
        return send(method, path, **options)  # type: ignore[arg-type]

    async def ameasured(method: str, path: str, **options: object) -> object:
        sizes.append(len(encode_body(options["body"])))
        return await asend(method, path, **options)  # type: ignore[arg-type]

    store.client.request = measured  # type: ignore[method-assign]
    store.async_client.request = ameasured  # type: ignore[method-assign]
    return sizes


def test_a_batch_of_puts_over_the_body_limit_is_stored_in_requests_under_it_with_results_in_place(
    store: AgentMemoryStore,
) -> None:
    sizes = _sent_bodies(store)

    results = store.batch(_ops(("sync",)))

    assert len(sizes) > 1 and max(sizes) < SERVICE_LIMIT
    assert results[0] is None and results[1:4] == [None, None, None]
    assert isinstance(results[4], Item) and results[4].value["n"] == 2
    assert results[5:7] == [None, None]
    assert sorted(item.key for item in results[7]) == [f"doc-{n}" for n in range(5)]  # type: ignore[union-attr]
    assert results[8:] == [None, None]
    assert sorted(item.key for item in store.search(("sync",), limit=10)) == ["doc-0", "doc-2", "doc-3", "doc-4"]


def test_an_async_batch_of_puts_over_the_body_limit_is_stored_in_requests_under_it_with_results_in_place(
    store: AgentMemoryStore,
) -> None:
    sizes = _sent_bodies(store)

    async def batch() -> list[Result]:
        try:
            return await store.abatch(_ops(("async",)))
        finally:
            await store.async_client.aclose()

    results = run_async(batch)

    assert len(sizes) > 1 and max(sizes) < SERVICE_LIMIT
    assert isinstance(results[4], Item) and results[4].value["n"] == 2
    assert sorted(item.key for item in results[7]) == [f"doc-{n}" for n in range(5)]  # type: ignore[union-attr]
    assert results[9] is None
    assert sorted(item.key for item in store.search(("async",), limit=10)) == ["doc-0", "doc-2", "doc-3", "doc-4"]


def test_a_put_the_service_cannot_take_even_alone_is_its_413_and_the_puts_before_it_are_stored(
    store: AgentMemoryStore,
) -> None:
    ops = [PutOp(("big",), "small", {"text": "fits"}), PutOp(("big",), "huge", {"text": "x" * SERVICE_LIMIT})]

    with pytest.raises(ApiError) as refused:
        store.batch(ops)

    assert refused.value.status == 413
    assert store.get(("big",), "small") is not None and store.get(("big",), "huge") is None
