"""A real service (the web server against the test database) and acme's checkpointer talking to it over HTTP; and,
for sync clients in tests that need no separate process, the same application in-process (the hot lane in
front of Django, as the web server runs it) through httpx's WSGI transport (on the test's thread, so it sees
the test's transaction)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connections

from conftest import World
from memory_admin.wsgi import application as service_application
from tests.servers import ServerProcess, running, web_server


@pytest.fixture
def service(transactional_db: None) -> Iterator[ServerProcess]:
    with running(web_server(workers=1, threads=4)) as server:
        yield server


@pytest.fixture
def saver(service: ServerProcess, world: World) -> Iterator[AgentMemorySaver]:
    saver = AgentMemorySaver(base_url=service.url, api_key=world.acme.raw_key)
    yield saver
    saver.close()


@pytest.fixture
def in_process(db: None) -> Iterator[dict[str, object]]:
    """Client options that route the memory clients' requests into this process's Django application."""
    transport = httpx.WSGITransport(app=service_application)
    # As Django's test client does: a request must not close the connection that holds the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"base_url": "http://testserver", "transport": transport}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def in_process_threads(transactional_db: None) -> dict[str, object]:
    """As `in_process`, for code that calls from other threads too (a LangGraph run saves checkpoints from its
    executor's threads): each thread has its own connection, so what is written is committed. A request on
    another thread closes its connection when done (that thread may end before the test databases go)."""
    application = service_application

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return application(environ, start_response)
        finally:
            if threading.current_thread() is not threading.main_thread():
                connections.close_all()

    return {"base_url": "http://testserver", "transport": httpx.WSGITransport(app=app)}


T = TypeVar("T")


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a loop of its own thread (a browser test may already own this thread's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
