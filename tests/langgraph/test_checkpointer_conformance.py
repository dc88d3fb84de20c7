"""LangGraph's official conformance suite (langgraph-checkpoint-conformance) against AgentMemorySaver talking
to a real server: every base capability and every extended one it implements must pass."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from agent_memory_client.checkpoint import AgentMemorySaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES, BASE_CAPABILITIES

from conftest import World
from tests.langgraph.conftest import run_async
from tests.servers import ServerProcess


def test_every_conformance_capability_passes_over_http(service: ServerProcess, world: World) -> None:
    @checkpointer_test(name="AgentMemorySaver")
    async def factory() -> AsyncGenerator[AgentMemorySaver, None]:
        saver = AgentMemorySaver(base_url=service.url, api_key=world.acme.raw_key)
        yield saver
        await saver.async_client.aclose()
        saver.close()

    report = run_async(lambda: validate(factory))

    failures = {name: result.failures for name, result in report.results.items() if not result.passed}
    assert not failures, failures
    detected = {name for name, result in report.results.items() if result.detected}
    assert detected == {capability.value for capability in ALL_CAPABILITIES}
    assert {capability.value for capability in BASE_CAPABILITIES} <= detected
    assert all(result.tests_passed > 0 for result in report.results.values())
    assert report.to_dict()["conformance_level"] == "FULL"
