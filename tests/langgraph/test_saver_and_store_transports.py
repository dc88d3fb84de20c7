"""A saver's or store's `transport=` serves its sync calls and `async_transport=` its async ones, so that a
proxy (or a test's in-process application) carries all of their requests. Given a transport for one kind only,
the calls of the other kind raise ValueError rather than reach the service around it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from agent_memory_client.client import RetryPolicy
from agent_memory_client.store import AgentMemoryStore
from langchain_core.runnables import RunnableConfig

from tests.langgraph.conftest import run_async
from tests.langgraph.test_client_requests import _Request, _response, _Scripted

ONE = RetryPolicy(attempts=1)
CONFIG: RunnableConfig = {"configurable": {"thread_id": "lg-proxied", "checkpoint_ns": ""}}
# Nothing listens here: a request that went around the proxy would fail to connect, not be answered.
SERVICE = "http://127.0.0.1:9"


def _proxy_answer(index: int, request: _Request) -> bytes:
    """The service's answers, passed on by the proxy: no such item, no such thread."""
    if "/store/" in request.target:
        return _response(200, {"results": [None]})
    missing = {"code": "not_found", "message": "No such thread.", "details": {"thread_id": "lg-proxied"}}
    return _response(404, {"error": missing})


@pytest.fixture
def proxy() -> Iterator[_Scripted]:
    server = _Scripted(_proxy_answer)
    yield server
    server.close()


def test_the_async_calls_of_a_saver_and_a_store_go_through_their_async_transport(proxy: _Scripted) -> None:
    transports: dict[str, Any] = {
        "transport": httpx.HTTPTransport(proxy=proxy.url),
        "async_transport": httpx.AsyncHTTPTransport(proxy=proxy.url),
    }
    saver = AgentMemorySaver(base_url=SERVICE, api_key="mk_test", retry=ONE, **transports)
    store = AgentMemoryStore(base_url=SERVICE, api_key="mk_test", retry=ONE, **transports)

    async def read() -> tuple[Any, Any]:
        return await saver.aget_tuple(CONFIG), await store.aget(("prefs",), "alice")

    assert saver.get_tuple(CONFIG) is None and store.get(("prefs",), "alice") is None
    assert run_async(read) == (None, None)

    assert len(proxy.requests) == 4
    assert all(request.target.startswith(f"{SERVICE}/api/v1/") for request in proxy.requests)  # as a proxy is asked


def test_a_saver_or_store_given_a_transport_for_one_kind_of_call_refuses_the_other(proxy: _Scripted) -> None:
    sync_only: dict[str, Any] = {"transport": httpx.HTTPTransport(proxy=proxy.url)}
    async_only: dict[str, Any] = {"async_transport": httpx.AsyncHTTPTransport(proxy=proxy.url)}
    saver = AgentMemorySaver(base_url=SERVICE, api_key="mk_test", retry=ONE, **sync_only)
    store = AgentMemoryStore(base_url=SERVICE, api_key="mk_test", retry=ONE, **sync_only)

    with pytest.raises(ValueError, match="async_transport="):
        run_async(lambda: saver.aget_tuple(CONFIG))
    with pytest.raises(ValueError, match="async_transport="):
        run_async(lambda: store.aget(("prefs",), "alice"))
    with pytest.raises(ValueError, match="transport="):
        AgentMemorySaver(base_url=SERVICE, api_key="mk_test", retry=ONE, **async_only).get_tuple(CONFIG)
    with pytest.raises(ValueError, match="transport="):
        AgentMemoryStore(base_url=SERVICE, api_key="mk_test", retry=ONE, **async_only).get(("prefs",), "alice")

    assert proxy.requests == []
