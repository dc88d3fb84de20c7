"""Small helpers the sessions tests share: creating sessions and appending through the real API."""

from __future__ import annotations

from typing import Any

from django.test import override_settings
from rest_framework.test import APIClient

from sessions_app.models import AgentSession


def create_session(client: APIClient, session_id: str = "s-1", user_id: str = "user-1", **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/sessions", {"id": session_id, "user_id": user_id, **extra}, format="json")
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def append(client: APIClient, session_id: str, *events: tuple[str, Any], **extra: Any) -> Any:
    body = {"events": [{"type": kind, "payload": payload} for kind, payload in events], **extra}
    return client.post(f"/api/v1/sessions/{session_id}/events", body, format="json")


def say(client: APIClient, session_id: str, *texts: str, role: str = "user") -> Any:
    messages = [{"role": role, "content": text} for text in texts]
    return client.post(f"/api/v1/sessions/{session_id}/context/messages", {"messages": messages}, format="json")


def head_version(session_id: str) -> int:
    return AgentSession.objects.get(session_id=session_id).head_version


def cache_unreachable(port: int) -> override_settings:
    """The Redis cache pointed at a port nothing listens on (`port`, an unused one), with short timeouts."""
    location = f"redis://127.0.0.1:{port}/0"
    options = {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2}
    return override_settings(
        CACHES={"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": location, "OPTIONS": options}}
    )
