"""Shared helpers of the checkpoint tests: URLs, a session of acme, saving through the API."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from conftest import World
from sessions_app.models import AgentSession
from tests.factories import SessionFactory


def acme_session(world: World, **fields: Any) -> AgentSession:
    return SessionFactory.create(tenant=world.acme.tenant, **fields)


def url(session: AgentSession, suffix: str = "") -> str:
    return f"/api/v1/sessions/{session.session_id}/checkpoints{suffix}"


def save(client: APIClient, session: AgentSession, **body: Any) -> Any:
    body.setdefault("node_id", "agent")
    return client.post(url(session), body, format="json")


def saved(client: APIClient, session: AgentSession, **body: Any) -> dict[str, Any]:
    """Save and insist it worked; the response body."""
    response = save(client, session, **body)
    assert response.status_code in (200, 201), response.content
    data: dict[str, Any] = response.json()
    return data


def messages(count: int) -> dict[str, Any]:
    return {"messages": [{"role": "user" if i % 2 else "assistant", "content": f"message {i}"} for i in range(count)]}
