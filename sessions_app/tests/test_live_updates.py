"""Every successful write publishes a typed message to its session's (and tenant's) group after commit."""

from __future__ import annotations

import pytest

from conftest import World
from memory_admin.health import redis_client
from memory_admin.live import channel_name, session_group, tenant_group
from sessions_app.models import AgentSession
from sessions_app.tests.helpers import append, create_session, say
from tests.live import drain

pytestmark = pytest.mark.django_db(transaction=True)


def test_appends_and_status_changes_reach_the_session_group_in_order(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    session = AgentSession.objects.get(session_id="s")
    pubsub = redis_client().pubsub()
    pubsub.subscribe(channel_name(session_group(session.pk)))
    pubsub.get_message(timeout=1)

    say(world.acme.client, "s", "hello", "there")
    append(world.acme.client, "s", ("NODE_TRANSITION", {"node": "plan"}))
    world.acme.client.patch("/api/v1/sessions/s", {"status": "paused"}, format="json")

    messages = drain(pubsub, 3)
    assert [(m["type"], m.get("version")) for m in messages] == [
        ("event.appended", 2),
        ("event.appended", 3),
        ("session.updated", 2),
    ]
    assert messages[0]["first_version"] == 1 and messages[0]["count"] == 2
    assert all(m["session"] == "s" and m["tenant"] == str(world.acme.tenant.pk) for m in messages)


def test_new_sessions_reach_their_tenants_group_only(world: World) -> None:
    pubsub = redis_client().pubsub()
    pubsub.subscribe(channel_name(tenant_group(world.acme.tenant.pk)))
    pubsub.get_message(timeout=1)

    create_session(world.outsider.client, "theirs", "mallory")
    create_session(world.acme.client, "ours", "alice")

    messages = drain(pubsub, 2, timeout=2)
    assert [(m["type"], m["session"]) for m in messages] == [("session.created", "ours")]


def test_a_rejected_write_publishes_nothing(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    session = AgentSession.objects.get(session_id="s")
    pubsub = redis_client().pubsub()
    pubsub.subscribe(channel_name(session_group(session.pk)))
    pubsub.get_message(timeout=1)

    append(world.acme.client, "s", ("NODE_TRANSITION", {"node": "a"}), expected_version=7)

    assert drain(pubsub, 1, timeout=1) == []
