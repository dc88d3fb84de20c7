"""The dashboard's WebSocket: live updates for the pages a staff member has open.

Protocol (JSON frames):

    client → server
      {"action": "watch_session", "session": "<session uuid>", "after_version": 41}
      {"action": "watch_tenant", "tenant": "<tenant uuid>"}
    server → client
      {"type": "catchup", "session": "<uuid>", "events": [timeline rows after after_version]}
      {"type": "event.appended", …, "events": [the new timeline rows]}
      any other message type of memory_admin.live, as published
      {"type": "error", "message": "…"}

Watching a session first sends what was appended after `after_version` (the last version the page shows),
then everything new; rows carry their version, and the page drops any it already has, so a reconnect
neither misses nor repeats an event. The user's staff role is checked on connect and on every frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import redis.asyncio as aioredis
import structlog
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from memory_admin.live import channel_name, session_group, tenant_group
from sessions_app.models import AgentSession
from sessions_app.selectors import timeline
from tenants_app.models import Tenant
from tenants_app.roles import is_staff_member

logger = structlog.get_logger("memory.live")

CATCHUP_LIMIT = 500
CLOSE_FORBIDDEN = 4403


def _still_staff(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    # Roles are cached on the user object for a request; a long-lived socket must see a revoked role.
    user.__dict__.pop("_memory_roles", None)
    user.refresh_from_db(fields=["is_active"])
    return is_staff_member(user)


def _session(pk: str) -> AgentSession | None:
    try:
        return AgentSession.objects.filter(pk=uuid.UUID(pk)).first()
    except ValueError:
        return None


def _rows(session_pk: str, *, after: int, upto: int | None = None) -> list[dict[str, Any]]:
    session = _session(session_pk)
    if session is None:
        return []
    rows = timeline(session, after=after, limit=CATCHUP_LIMIT)
    return [row for row in rows if upto is None or row["version"] <= upto]


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.pubsub: Any = None
        self.listener: asyncio.Task[None] | None = None
        if not await database_sync_to_async(_still_staff)(self.scope.get("user")):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.listener
        if self.pubsub is not None:
            await self.pubsub.aclose()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not await database_sync_to_async(_still_staff)(self.scope.get("user")):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        action = content.get("action") if isinstance(content, dict) else None
        if action == "watch_session":
            await self._watch_session(content)
        elif action == "watch_tenant":
            await self._watch_tenant(content)
        else:
            await self.send_json({"type": "error", "message": "unknown action"})

    async def _watch_session(self, content: dict[str, Any]) -> None:
        session = await database_sync_to_async(_session)(str(content.get("session", "")))
        after = content.get("after_version", 0)
        if isinstance(after, bool):
            after = -1
        if session is None or not isinstance(after, int) or after < 0:
            await self.send_json({"type": "error", "message": "no such session"})
            return
        # Subscribe before reading the backlog: whatever lands in between arrives twice, never zero times.
        await self._subscribe(session_group(session.pk))
        rows = await database_sync_to_async(_rows)(str(session.pk), after=after)
        await self.send_json({"type": "catchup", "session": str(session.pk), "events": rows})

    async def _watch_tenant(self, content: dict[str, Any]) -> None:
        try:
            tenant_pk = uuid.UUID(str(content.get("tenant", "")))
        except ValueError:
            tenant_pk = None
        exists = tenant_pk and await database_sync_to_async(Tenant.objects.filter(pk=tenant_pk).exists)()
        if not exists:
            await self.send_json({"type": "error", "message": "no such tenant"})
            return
        await self._subscribe(tenant_group(tenant_pk))

    async def _subscribe(self, group: str) -> None:
        if self.pubsub is None:
            self.pubsub = aioredis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe(channel_name(group))
        if self.listener is None:
            self.listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async for item in self.pubsub.listen():
            if item.get("type") != "message":
                continue
            message = json.loads(item["data"])
            channel = item["channel"].decode() if isinstance(item["channel"], bytes) else item["channel"]
            if message.get("type") == "event.appended":
                session_pk = channel.rsplit("session.", 1)[-1]
                message["session_pk"] = session_pk
                message["events"] = await database_sync_to_async(_rows)(
                    session_pk, after=message["first_version"] - 1, upto=message["version"]
                )
            await self.send_json(message)
