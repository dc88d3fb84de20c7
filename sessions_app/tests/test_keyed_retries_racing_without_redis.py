"""Two retries of one keyed write, racing while Redis cannot hold their key: one effect, the first answer twice.

Without Redis the Idempotency-Key is Postgres's to keep. The race that matters: both retries wait for the
session row's lock (held here by another connection, as a long append would), and the second to get it must
find what the first stored, though its statement began before the first committed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.db import connection, transaction

from conftest import World
from memory_admin.api import idempotency
from memory_admin.health import redis_client
from memory_admin.live import channel_name, session_group
from sessions_app import services
from sessions_app.models import AgentSession, Event, EventType
from sessions_app.tests.helpers import cache_unreachable, create_session
from tests.clients import AgentClient, served_by_hot_lane
from tests.concurrency import wait_until_blocked
from tests.live import drain

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = {"messages": [{"role": "user", "content": "pay the invoice"}]}
# What each keyed write sends, and how many events it appends.
WRITES = {
    "an event": ("post", "/api/v1/sessions/s/events", {"type": "NODE_TRANSITION", "payload": {"node": "pay"}}, 1),
    "a batch of events": (
        "post",
        "/api/v1/sessions/s/events",
        {"events": [{"type": "NODE_TRANSITION", "payload": {"node": n}} for n in ("plan", "pay", "report")]},
        3,
    ),
    "a state patch": (
        "post",
        "/api/v1/sessions/s/events",
        {"type": "STATE_PATCHED", "payload": {"patch": [{"op": "add", "path": "/n", "value": 1}]}},
        1,
    ),
    "messages": ("post", "/api/v1/sessions/s/context/messages", MESSAGES, 1),
    "the context": ("put", "/api/v1/sessions/s/context", MESSAGES, 1),
    "a tool's state": ("put", "/api/v1/sessions/s/tools/search", {"state": {"page": 2}}, 1),
}
# The hot lane serves the POSTs; an Accept it does not take sends them to Django's views, like every PUT.
TO_DJANGO = {"HTTP_ACCEPT": "application/json; q=1"}
CASES = [
    pytest.param("an event", {}, id="an event, hot lane"),
    pytest.param("an event", TO_DJANGO, id="an event, django lane"),
    pytest.param("a batch of events", {}, id="a batch of events, hot lane"),
    pytest.param("a batch of events", TO_DJANGO, id="a batch of events, django lane"),
    # (appended in a transaction that locks the row first, then looks for the key: its retry was always found)
    pytest.param("a state patch", {}, id="a state patch"),
    pytest.param("messages", {}, id="messages, hot lane"),
    pytest.param("messages", TO_DJANGO, id="messages, django lane"),
    pytest.param("the context", {}, id="the context"),
    pytest.param("a tool's state", {}, id="a tool's state"),
]


@pytest.fixture
def idempotency_records_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis refuses the key's claim (both lanes run the request unprotected, as when it is down); the rest of
    Redis works, so the live updates can be counted."""

    def unreachable(claim: idempotency.Claim) -> bool:
        raise redis.ConnectionError("Redis is unreachable")

    monkeypatch.setattr(idempotency, "take", unreachable)


@pytest.fixture
def redis_unreachable(unused_tcp_port: int) -> Iterator[None]:
    with cache_unreachable(unused_tcp_port):
        yield


def _sent_behind_the_session_lock(
    world: World, method: str, path: str, bodies: list[Any], headers: dict[str, str]
) -> list[Any]:
    """The responses to `bodies`, sent at once with one key while another connection holds the session row (let
    go once all of them wait for it), in the order they came back."""
    responses: list[Any] = []

    def send(body: Any) -> None:
        client = AgentClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.acme.raw_key}")
        try:
            responses.append(getattr(client, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k", **headers))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    with transaction.atomic():
        AgentSession.objects.select_for_update().get(session_id="s")
        for thread in threads:
            thread.start()
        wait_until_blocked(what="the requests", waiters=len(bodies))
    for thread in threads:
        thread.join(timeout=30)
    return responses


def _retried(world: World, write: str, headers: dict[str, str]) -> list[Any]:
    method, path, body, _ = WRITES[write]
    return _sent_behind_the_session_lock(world, method, path, [body, body], headers)


@pytest.mark.parametrize(("write", "headers"), CASES)
@pytest.mark.usefixtures("idempotency_records_unreachable")
def test_two_racing_retries_of_a_keyed_write_append_once_and_get_the_same_answer(
    world: World, write: str, headers: dict[str, str]
) -> None:
    create_session(world.acme.client, "s", "alice")
    session = AgentSession.objects.get(session_id="s")
    pubsub = redis_client().pubsub()
    pubsub.subscribe(channel_name(session_group(session.pk)))
    pubsub.get_message(timeout=1)

    first, second = _retried(world, write, headers)

    method, _, _, count = WRITES[write]
    assert first.status_code == second.status_code == (201 if method == "post" else 200), (
        first.content,
        second.content,
    )
    assert second.json() == first.json()
    assert served_by_hot_lane(first) == served_by_hot_lane(second) == (method == "post" and not headers)
    assert list(Event.objects.filter(session=session).values_list("version", flat=True)) == list(range(1, count + 1))
    assert AgentSession.objects.get(pk=session.pk).head_version == count
    messages = drain(pubsub, 2, timeout=1)
    assert [(m["type"], m["first_version"], m["version"]) for m in messages] == [("event.appended", 1, count)]


@pytest.mark.usefixtures("redis_unreachable")
def test_two_racing_retries_of_an_append_while_redis_is_down_append_once(world: World) -> None:
    create_session(world.acme.client, "s", "alice")

    first, second = _retried(world, "an event", {})

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json() == {"head_version": 1, "events": [first.json()["events"][0]]}
    assert Event.objects.count() == 1


@pytest.mark.usefixtures("idempotency_records_unreachable")
def test_the_same_key_racing_with_another_body_is_a_422_and_appends_once(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    bodies = [{"type": "NODE_TRANSITION", "payload": {"node": node}} for node in ("pay", "refund")]

    responses = _sent_behind_the_session_lock(world, "post", "/api/v1/sessions/s/events", bodies, {})

    assert sorted(response.status_code for response in responses) == [201, 422]
    assert Event.objects.count() == 1


def test_a_keyed_append_waiting_for_one_in_a_transaction_with_its_key_is_answered_with_that_ones_events(
    world: World,
) -> None:
    create_session(world.acme.client, "s", "alice")
    session = AgentSession.objects.get(session_id="s")
    events = [services.NewEvent(EventType.NODE_TRANSITION, {"node": "pay"})]
    # An earlier append made the person's key: the retry below waits for the session row, not for that key.
    services.append_events(session=session, events=[services.NewEvent(EventType.NODE_TRANSITION, {"node": "plan"})])
    retried: list[Any] = []

    def retry() -> None:
        try:
            retried.append(services.append_events(session=session, events=events, idempotency_key="k"))
        finally:
            connection.close()

    thread = threading.Thread(target=retry)
    with transaction.atomic():  # the transactional append: it locks the row, then looks for the key
        first = services.append_events(session=session, events=events, idempotency_key="k")
        thread.start()
        wait_until_blocked(what="the retry")
    thread.join(timeout=30)

    assert retried[0].replayed
    assert (
        [(e.version, e.type) for e in retried[0].events]
        == [(e.version, e.type) for e in first.events]
        == [(2, EventType.NODE_TRANSITION)]
    )
    assert Event.objects.count() == 2
