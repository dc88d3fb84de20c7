"""Deleting a tenant in the Django admin: its rows go by cascade, and its data in Redis goes with them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from compliance_app.models import ErasureRequest
from conftest import Agent, World
from memories_app.models import Memory
from memory_admin.health import redis_client
from sessions_app.models import AgentSession
from tenants_app.models import Tenant

pytestmark = pytest.mark.django_db


def _use(agent: Agent, capture: Any) -> list[str]:
    """Give the agent's tenant a context window, a tool's state and an idempotency record; their Redis keys."""
    client = agent.client
    with capture(execute=True):
        session = {"id": "s1", "user_id": "u1"}
        response = client.post("/api/v1/sessions", session, format="json", HTTP_IDEMPOTENCY_KEY="k1")
        assert response.status_code == 201
        message = {"messages": [{"role": "user", "content": "my IBAN is DE89 3704 0044 0532 0130 00"}]}
        response = client.post(
            "/api/v1/sessions/s1/context/messages", message, format="json", HTTP_IDEMPOTENCY_KEY="k2"
        )
        assert response.status_code < 300
        tool = {"state": {"card": "4111 1111 1111 1111"}}
        assert client.put("/api/v1/sessions/s1/tools/pay", tool, format="json").status_code < 300
    session_pk = AgentSession.objects.get(tenant=agent.tenant, session_id="s1").pk
    keys = [
        *_keys(f"mem:ctx:{session_pk}*"),
        *_keys(f"mem:tool:{session_pk}:*"),
        *_keys(f"mem:idem:{agent.tenant.pk}:*"),
    ]
    assert any(key.startswith("mem:ctx:") for key in keys), keys
    assert any(key.startswith("mem:tool:") for key in keys), keys
    assert any(key.startswith("mem:idem:") for key in keys), keys
    return keys


def _keys(pattern: str) -> list[str]:
    return sorted(key.decode() for key in redis_client().scan_iter(match=pattern))


def _left(keys: list[str]) -> list[str]:
    return [key for key in keys if redis_client().exists(key)]


def test_deleting_a_tenant_in_the_admin_removes_its_context_tool_state_and_idempotency_records_from_redis(
    world: World, superuser_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    acme_keys = _use(world.acme, django_capture_on_commit_callbacks)
    outsider_keys = _use(world.outsider, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(
            f"/django-admin/tenants_app/tenant/{world.acme.tenant.pk}/delete/", {"post": "yes"}
        )

    assert response.status_code == 302
    assert not Tenant.objects.filter(pk=world.acme.tenant.pk).exists()
    assert _left(acme_keys) == []
    assert _left(outsider_keys) == outsider_keys
    assert world.acme.client.get("/api/v1/whoami").status_code == 401


def test_deleting_tenants_with_the_admin_action_removes_their_redis_data_too(
    world: World, superuser_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    acme_keys = _use(world.acme, django_capture_on_commit_callbacks)
    outsider_keys = _use(world.outsider, django_capture_on_commit_callbacks)
    selected = {"action": "delete_selected", "_selected_action": [str(world.acme.tenant.pk)], "post": "yes"}

    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post("/django-admin/tenants_app/tenant/", selected)

    assert response.status_code == 302
    assert not Tenant.objects.filter(pk=world.acme.tenant.pk).exists()
    assert _left(acme_keys) == []
    assert _left(outsider_keys) == outsider_keys


def test_a_tenant_that_filed_an_erasure_request_is_not_deleted_and_the_admin_says_why(
    world: World, superuser_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    acme_keys = _use(world.acme, django_capture_on_commit_callbacks)
    filed = world.acme.client.post(
        "/api/v1/erasure-requests", {"user_id": "someone", "legal_basis": "gdpr_art_17"}, format="json"
    )
    assert filed.status_code == 201
    path = f"/django-admin/tenants_app/tenant/{world.acme.tenant.pk}/delete/"

    confirm = superuser_client.get(path)
    with django_capture_on_commit_callbacks(execute=True):
        refused = superuser_client.post(path, {"post": "yes"})
    selected = {"action": "delete_selected", "_selected_action": [str(world.acme.tenant.pk)], "post": "yes"}
    with django_capture_on_commit_callbacks(execute=True):
        refused_in_bulk = superuser_client.post("/django-admin/tenants_app/tenant/", selected)

    for response in (confirm, refused, refused_in_bulk):
        assert response.status_code == 200
        assert "would require deleting the following protected related objects" in response.content.decode()
    assert Tenant.objects.filter(pk=world.acme.tenant.pk).exists()
    assert ErasureRequest.objects.filter(tenant=world.acme.tenant).exists()
    assert _left(acme_keys) == acme_keys


def test_a_tenant_with_memories_is_deleted_in_the_admin_after_a_confirmation_page_that_counts_its_rows(
    world: World, superuser_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    for agent in (world.acme, world.outsider):
        _use(agent, django_capture_on_commit_callbacks)
        for text in ("likes tea", "lives in Oslo"):
            memory = {"scope": "user", "user_id": "u1", "content": text}
            assert agent.client.post("/api/v1/memories", memory, format="json").status_code == 201
    path = f"/django-admin/tenants_app/tenant/{world.acme.tenant.pk}/delete/"

    confirm = superuser_client.get(path)
    with django_capture_on_commit_callbacks(execute=True):
        deleted = superuser_client.post(path, {"post": "yes"})

    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Are you sure you want to delete" in page
    assert "memories: 2" in page.lower()
    assert "sessions: 1" in page.lower()
    assert deleted.status_code == 302
    assert not Tenant.objects.filter(pk=world.acme.tenant.pk).exists()
    assert not Memory.objects.filter(tenant_id=world.acme.tenant.pk).exists()
    assert Memory.objects.filter(tenant=world.outsider.tenant).count() == 2
