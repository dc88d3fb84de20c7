"""The Redis lifetimes (context, tool state, idempotency) follow the retention policies, per tenant."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from conftest import World
from lifecycle_app import lifetimes
from lifecycle_app.models import RetentionPolicy
from lifecycle_app.services import remove_retention_override, set_retention_policy
from memory_admin.health import redis_client
from sessions_app.context import _meta_key, tool_key
from sessions_app.models import AgentSession

# Committed for real: the Redis writes of an append happen after its commit.
pytestmark = pytest.mark.django_db(transaction=True)

DEFAULT_CONTEXT = 2 * 3600
DEFAULT_TOOL = 30 * 60
DEFAULT_IDEMPOTENCY = 24 * 3600


def _start(world: World, agent_name: str, session_id: str) -> AgentSession:
    agent = getattr(world, agent_name)
    response = agent.client.post("/api/v1/sessions", {"id": session_id, "user_id": "u-1"}, format="json")
    assert response.status_code == 201, response.content
    return AgentSession.objects.get(tenant=agent.tenant, session_id=session_id)


def _append(world: World, agent_name: str, session_id: str, *, key: str | None = None) -> None:
    agent = getattr(world, agent_name)
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    response = agent.client.post(
        f"/api/v1/sessions/{session_id}/context/messages",
        {"messages": [{"role": "user", "content": "hello"}]},
        format="json",
        **headers,
    )
    assert response.status_code == 201, response.content


def _close_to(ttl: int, expected: int) -> bool:
    return expected - 5 <= ttl <= expected


def test_a_tenant_override_sets_its_context_lifetime_and_other_tenants_keep_the_default(world: World) -> None:
    set_retention_policy(tenant=world.acme.tenant, values={"context_ttl_seconds": 600}, updated_by="test")
    lifetimes.forget()
    acme = _start(world, "acme", "s-short")
    outsider = _start(world, "outsider", "s-default")
    _append(world, "acme", "s-short")
    _append(world, "outsider", "s-default")

    assert _close_to(redis_client().ttl(_meta_key(acme.pk)), 600)
    assert _close_to(redis_client().ttl(_meta_key(outsider.pk)), DEFAULT_CONTEXT)
    read = world.acme.client.get("/api/v1/sessions/s-short/context").json()
    assert read["ttl_seconds"] == 600
    assert world.outsider.client.get("/api/v1/sessions/s-default/context").json()["ttl_seconds"] == DEFAULT_CONTEXT


def test_the_global_policy_applies_until_a_tenant_overrides_it_and_again_once_the_override_is_removed(
    world: World,
) -> None:
    set_retention_policy(tenant=None, values={"tool_state_ttl_seconds": 900}, updated_by="test")
    set_retention_policy(tenant=world.acme.tenant, values={"tool_state_ttl_seconds": 120}, updated_by="test")
    lifetimes.forget()
    session = _start(world, "acme", "s-tools")
    _start(world, "outsider", "s-tools")

    put = world.acme.client.put("/api/v1/sessions/s-tools/tools/search", {"state": {"page": 2}}, format="json")
    assert put.status_code == 200, put.content
    assert put.json()["ttl_seconds"] == 120
    assert _close_to(redis_client().ttl(tool_key(session.pk, "search")), 120)
    other = world.outsider.client.put("/api/v1/sessions/s-tools/tools/search", {"state": {}}, format="json")
    assert other.json()["ttl_seconds"] == 900

    remove_retention_override(tenant=world.acme.tenant)
    lifetimes.forget()
    again = world.acme.client.put("/api/v1/sessions/s-tools/tools/search", {"state": {"page": 3}}, format="json")
    assert again.json()["ttl_seconds"] == 900


def test_a_tool_state_older_than_the_tenants_lifetime_is_gone_from_postgres_reads_too(world: World) -> None:
    session = _start(world, "acme", "s-expired")
    put = world.acme.client.put("/api/v1/sessions/s-expired/tools/search", {"state": 1}, format="json")
    assert put.status_code == 200
    session.events.update(created_at=timezone.now() - timedelta(minutes=5))
    redis_client().flushdb()  # the next read comes from Postgres, judged by the write's age
    assert world.acme.client.get("/api/v1/sessions/s-expired/tools/search").json()["source"] == "rebuilt"

    redis_client().flushdb()
    set_retention_policy(tenant=world.acme.tenant, values={"tool_state_ttl_seconds": 60}, updated_by="test")
    lifetimes.forget()
    assert world.acme.client.get("/api/v1/sessions/s-expired/tools/search").status_code == 404


def test_idempotency_records_are_kept_for_the_tenants_idempotency_lifetime(world: World) -> None:
    set_retention_policy(tenant=world.acme.tenant, values={"idempotency_ttl_seconds": 3600}, updated_by="test")
    lifetimes.forget()
    _start(world, "acme", "s-idem")
    _start(world, "outsider", "s-idem")
    _append(world, "acme", "s-idem", key="retry-me")
    _append(world, "outsider", "s-idem", key="retry-me")

    ttls = {
        key.decode().split(":")[2]: redis_client().ttl(key)
        for key in redis_client().scan_iter("mem:idem:*")
        if redis_client().type(key) == b"string"
    }
    assert _close_to(ttls[str(world.acme.tenant.pk)], 3600)
    assert _close_to(ttls[str(world.outsider.tenant.pk)], DEFAULT_IDEMPOTENCY)


def test_a_lifetime_under_a_minute_is_refused_and_nothing_changes(world: World) -> None:
    from memory_admin.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        set_retention_policy(tenant=world.acme.tenant, values={"context_ttl_seconds": 5}, updated_by="test")
    assert refused.value.details == {"field": "context_ttl_seconds"}
    assert lifetimes.lifetimes_for(world.acme.tenant.pk).context_seconds == DEFAULT_CONTEXT


def test_a_process_rereads_the_policies_once_its_copy_is_older_than_the_cache_time(world: World, settings: Any) -> None:
    settings.LIFETIMES_CACHE_SECONDS = 0.3
    set_retention_policy(tenant=world.acme.tenant, values={"context_ttl_seconds": 200}, updated_by="test")
    first = lifetimes.lifetimes_for(world.acme.tenant.pk)
    assert first.context_seconds == 200
    # Changed by another process: this one's copy is not cleared by that commit, so it is used until it is
    # older than the cache time.
    RetentionPolicy.objects.filter(tenant=world.acme.tenant).update(context_ttl_seconds=300)
    assert lifetimes.lifetimes_for(world.acme.tenant.pk) == first
    time.sleep(0.35)
    assert lifetimes.lifetimes_for(world.acme.tenant.pk).context_seconds == 300
