"""A real service (gunicorn against the test database) and acme's checkpointer talking to it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agent_memory_client.checkpoint import AgentMemorySaver

from conftest import World
from tests.servers import ServerProcess, gunicorn, running


@pytest.fixture
def service(transactional_db: None) -> Iterator[ServerProcess]:
    with running(gunicorn(workers=1, threads=4)) as server:
        yield server


@pytest.fixture
def saver(service: ServerProcess, world: World) -> Iterator[AgentMemorySaver]:
    saver = AgentMemorySaver(base_url=service.url, api_key=world.acme.raw_key)
    yield saver
    saver.close()
