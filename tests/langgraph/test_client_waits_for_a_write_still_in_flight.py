"""A write slower than the client's timeout: the retries with the same Idempotency-Key are answered 409 "still
in flight" (with Retry-After) until the first attempt is done, then with its answer. The client waits for that
answer, whatever attempts it had left, for up to RetryPolicy.in_flight_wait: giving up at once reported a
failure for a write that then succeeded, and a caller repeating the call would have written twice. (Against
scripted servers, the sync and async clients alike: tests/langgraph/test_client_requests.py.)"""

from __future__ import annotations

import pytest
from agent_memory_client.client import MemoryClient
from agent_memory_client.store import AgentMemoryStore

from conftest import World
from langgraph_app.models import StoreItem
from memories_app.models import Memory
from tests.concurrency import access_exclusive
from tests.servers import ServerProcess


@pytest.mark.django_db(transaction=True)
def test_a_write_held_past_the_timeout_by_the_service_returns_its_answer_and_is_stored_once(
    service: ServerProcess, world: World
) -> None:
    store = AgentMemoryStore(base_url=service.url, api_key=world.acme.raw_key, timeout=1.0)
    client = MemoryClient(service.url, world.acme.raw_key, timeout=1.0)

    # Held for longer than the client's four attempts take, one second apart as the 409's Retry-After asks.
    with access_exclusive(StoreItem._meta.db_table, for_seconds=4.0):
        store.put(("prefs",), "alice", {"theme": "dark"})
    with access_exclusive(Memory._meta.db_table, for_seconds=4.0):
        created = client.create_memory(user_id="alice", scope="user", content="likes trains")

    assert list(StoreItem.objects.values_list("value", flat=True)) == [{"theme": "dark"}]
    assert [str(pk) for pk in Memory.objects.values_list("id", flat=True)] == [created["id"]]
