"""A 404 is "no such thread" only when the service says so (its error names the thread): get_tuple and list of
an unknown thread are None and empty, and delete_thread of one does nothing. Any other 404, such as the answer
of a base_url that points below the service's root, is an error, not an empty thread or a delete that
silently did nothing."""

from __future__ import annotations

from typing import Any

import pytest
from agent_memory_client.checkpoint import AgentMemorySaver
from agent_memory_client.errors import NotFoundError
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint

from conftest import World
from langgraph_app.models import ThreadCheckpoint


def test_a_thread_the_service_does_not_have_reads_as_empty_and_deletes_as_nothing(
    in_process: dict[str, Any], world: World
) -> None:
    saver = AgentMemorySaver(api_key=world.acme.raw_key, **in_process)
    config: RunnableConfig = {"configurable": {"thread_id": "lg-never"}}

    assert saver.get_tuple(config) is None
    assert list(saver.list(config)) == []
    saver.delete_thread("lg-never")


def test_a_404_that_does_not_name_the_thread_is_an_error_for_reads_and_deletes(
    in_process: dict[str, Any], world: World
) -> None:
    good = AgentMemorySaver(api_key=world.acme.raw_key, **in_process)
    config: RunnableConfig = {"configurable": {"thread_id": "lg-kept", "checkpoint_ns": ""}}
    good.put(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
    # Behind a proxy that serves the service under /memory, say, but without that prefix: every call is a 404.
    wrong = AgentMemorySaver(
        api_key=world.acme.raw_key, base_url="http://testserver/memory", transport=in_process["transport"]
    )

    with pytest.raises(NotFoundError):
        wrong.get_tuple(config)
    with pytest.raises(NotFoundError):
        list(wrong.list(config))
    with pytest.raises(NotFoundError):
        wrong.delete_thread("lg-kept")

    assert ThreadCheckpoint.objects.filter(session__session_id="lg-kept").count() == 1
