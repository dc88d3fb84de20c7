"""The dashboard's WebSocket: live updates for the pages a staff member has open.

Protocol (JSON frames). Published messages (memory_admin.live) reach a socket only through the groups its
page asked to watch, and only when the user's roles allow that message type.

    client → server
      {"action": "watch_session", "session": "<session uuid>", "after_version": 41}     session page
      {"action": "watch_tenant", "tenant": "<tenant uuid>", "since": "<iso time>"}     sessions list of a tenant
      {"action": "watch_sessions", "since": "<iso time>"}                             sessions list, every tenant
          (both + "shown": ["<session uuid>", …], up to CATCHUP_LIMIT of the rows the list shows: it is told which
          of them were erased; a list showing more sends the rest in more watches, without `since` once the
          sessions' catch-up is done; + "after": […] from the last `watching` with `more`, as for the user page)
      {"action": "watch_user", "tenant": "<uuid>", "user_id": "…", "since": "<iso>"}  user page
          (+ "after": {…} from the last `watching` with `more`: the next batch of the same catch-up)
      {"action": "watch_keys", "tenants": ["<uuid>", …], "since": "<iso>"}            API keys page of a tenant (admins)
      {"action": "watch_all_keys", "since": "<iso>"}                                  API keys page, every tenant
    server → client
      {"type": "catchup", "session": "<uuid>", "events": [timeline rows after after_version], "more": false}
          (at most CATCHUP_LIMIT rows; `more`: there are newer ones, ask again from the last of these)
      {"type": "event.appended", …, "events": [the new timeline rows]}
      {"type": "session.created", …, "html": "<tr>…"}   (sessions list; the row as the list renders it)
      {"type": "session.row", "session": "<session id>", "html": "<tr>…"}   (sessions list catch-up)
      {"type": "session.erased", "sessions": ["<session uuid>", …]}   (sessions list: drop these rows; live, or
          in answer to `shown`. Nothing that names the person: session row ids only)
      {"type": "session.erased", "session": "<uuid>"}   (session page: its person was erased; live, or in answer to
          watch_session for a session no page may show any more, hidden with its person or purged since)
      {"type": "memory.rows", "rows": [{"memory", "scope", "deleted", "html"?}], "totals": {"<scope>": n}}
          (user page; `totals`: the live memories of each section the rows are in, counted with them)
      {"type": "profile.html", "html": "…"}   {"type": "user.session", "session": "<uuid>", "html": "<tr>…"}
      {"type": "user.erased"}   (user page: the person's erasure was approved; to every staff role, with nothing
          of the erasure request, which support may not see)
      {"type": "api_key.row", "key": <id>, "html": "<tr>…"}   (API keys page)
      {"type": "operation.row", "operation": "<uuid>", "pending": 2, "html": "<tr>…"}   (session page journal)
      any other message type of memory_admin.live, as published, to the session and tenant watchers
      {"type": "watching", "what": "tenant" | "sessions" | "user" | "keys" | "all_keys", …}
          (after a watch's catch-up: live from here)
          (user page: "more": true and "after": {…} when the catch-up stopped at CATCHUP_LIMIT rows of a kind:
          ask again with the same `since` and this `after`; sessions list: the same, "after": [iso, uuid])
      {"type": "error", "message": "…"}

Catching up: a session page sends the last version it shows and first gets what was appended after it, a
batch at a time (`more`: ask again from the last row); it shows a live row only right after the one before it,
and asks for a catch-up when some are missing (a message lost on the way). The other pages send `since`, the
server time they were rendered at or of the last message they saw, and first get the rows changed since then
(a little earlier, in fact: see live_rows.CATCHUP_MARGIN), the user page's a batch at a time. Every row is
keyed by its version or id, and pages replace or drop what they already have, so a reconnect neither misses nor
repeats anything.

Permissions: the user's roles are read on connect and on every frame the page sends, and again before a
published message is passed on when they were last read more than ROLE_RECHECK_SECONDS ago, with the login
behind the socket (ended by logging out or by a password change, as for the pages). A user who lost every
staff role, or that login, is disconnected (4403); API key messages go to admins only, erasure messages to compliance.
The user page's frames are rows it may show, read again, so they go to every staff role whatever message they
came from (an erasure's approval reaches a support user's page as `user.erased`, nothing more).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from importlib import import_module
from typing import Any

import redis.asyncio as aioredis
import structlog
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.utils.crypto import constant_time_compare
from rest_framework.exceptions import ParseError

from memory_admin.api.parsers import parse_json_text
from memory_admin.dashboard import live_rows
from memory_admin.live import (
    ALL_KEYS_GROUP,
    ALL_SESSIONS_GROUP,
    CHANNEL_PREFIX,
    channel_name,
    session_group,
    tenant_group,
)
from sessions_app.models import AgentSession
from sessions_app.selectors import timeline
from tenants_app.models import Tenant
from tenants_app.roles import Role, roles_of

logger = structlog.get_logger("memory.live")

CATCHUP_LIMIT = 500
CLOSE_FORBIDDEN = 4403
# How stale the roles behind a pushed message may be: a revoked role stops the flow within this long.
ROLE_RECHECK_SECONDS = 2.0
MAX_WATCHED_TENANTS = 200

# Message types (by prefix) that need more than a staff role; everything else any staff member may see.
ROLE_FOR_TYPE: dict[str, Role] = {"api_key.": Role.ADMIN, "erasure.": Role.COMPLIANCE, "export.": Role.COMPLIANCE}


def role_for(message_type: object) -> Role | None:
    for prefix, role in ROLE_FOR_TYPE.items():
        if isinstance(message_type, str) and message_type.startswith(prefix):
            return role
    return None


def _current_roles(user: Any, session_key: str | None) -> frozenset[Role]:
    """The roles of the socket's user as they stand now, read afresh: a role revoked, the account disabled or
    deleted, or the login ended (logged out, or the password changed) since the socket opened all leave none.
    Not through the scope's user object, which caches its roles (and, behind channels' lazy proxy, keeps them
    out of reach)."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    fresh = get_user_model().objects.filter(pk=user.pk, is_active=True).first()
    if fresh is None or (session_key is not None and not _logged_in(session_key, fresh)):
        return frozenset()
    return roles_of(fresh)


def _logged_in(session_key: str, user: Any) -> bool:
    """Whether the browser session the socket was opened with still holds this user's login, as
    django.contrib.auth.get_user decides for a page: the user's id, and the hash of their password made with
    the secret key or one of its fallbacks (a password changed since ends every other login)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    if store.get(SESSION_KEY) != str(user.pk):
        return False
    session_hash = store.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    # Unlike a page, the socket cannot move a fallback's login to the current key (a new cookie): it accepts it.
    hashes = (user.get_session_auth_hash(), *user.get_session_auth_fallback_hash())
    return any(constant_time_compare(session_hash, expected) for expected in hashes)


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _session(pk: str) -> AgentSession | None:
    session_pk = _uuid(pk)
    return AgentSession.objects.filter(pk=session_pk).first() if session_pk is not None else None


def _rows(session_pk: str, *, after: int, upto: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    session = _session(session_pk)
    if session is None:
        return []
    rows = timeline(session, after=after, limit=limit or CATCHUP_LIMIT)
    return [row for row in rows if upto is None or row["version"] <= upto]


def _tenant_pks(values: object) -> list[uuid.UUID]:
    """The existing tenants among `values` (a list of ids); anything malformed is left out."""
    if not isinstance(values, list):
        return []
    wanted = []
    for value in values[:MAX_WATCHED_TENANTS]:
        try:
            wanted.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return list(Tenant.objects.filter(pk__in=wanted).values_list("pk", flat=True))


def _erased_among(shown: object) -> list[str]:
    """The sessions among `shown` (row ids a sessions list shows, at most CATCHUP_LIMIT of them: a list showing
    more sends them in several frames) that no page may show any more: hidden with their person by an erasure,
    or purged since. Anything malformed is left out."""
    if not isinstance(shown, list):
        return []
    wanted = list(dict.fromkeys(pk for value in shown[:CATCHUP_LIMIT] if (pk := _uuid(value)) is not None))
    visible = set(AgentSession.objects.filter(pk__in=wanted).values_list("pk", flat=True)) if wanted else set()
    return [str(pk) for pk in wanted if pk not in visible]


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.pubsub: Any = None
        self.listener: asyncio.Task[None] | None = None
        self.roles: frozenset[Role] = frozenset()
        self.roles_read_at = 0.0
        self.sessions: set[str] = set()
        self.tenants: set[str] = set()
        self.all_sessions = False
        self.users: dict[str, set[str]] = {}
        self.key_tenants: set[str] = set()
        self.all_keys = False
        if not await self._read_roles():
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()

    async def disconnect(self, code: int) -> None:
        listener = getattr(self, "listener", None)
        if listener is not None and listener is not asyncio.current_task():
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if getattr(self, "pubsub", None) is not None:
            await self.pubsub.aclose()

    # --- permissions ----------------------------------------------------------------------------------

    async def _read_roles(self) -> bool:
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None)
        self.roles = await database_sync_to_async(_current_roles)(self.scope.get("user"), session_key)
        self.roles_read_at = time.monotonic()
        return bool(self.roles)

    async def _allowed(self, role: Role | None) -> bool | None:
        """May this user see a message needing `role`? None when they are no longer staff (socket closed)."""
        if time.monotonic() - self.roles_read_at > ROLE_RECHECK_SECONDS and not await self._read_roles():
            await self.close(code=CLOSE_FORBIDDEN)
            return None
        return role is None or role in self.roles

    # --- frames from the page -------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """A frame is JSON text, held to the API's rules (no NUL or lone surrogate, bounded depth); anything
        else gets an error frame and the socket stays open."""
        if text_data is None:
            await self.send_json({"type": "error", "message": "frames are JSON text"})
            return
        try:
            content = parse_json_text(text_data)
        except ParseError:
            await self.send_json({"type": "error", "message": "frames are JSON text"})
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not await self._read_roles():
            await self.close(code=CLOSE_FORBIDDEN)
            return
        action = content.get("action") if isinstance(content, dict) else None
        handler = {
            "watch_session": self._watch_session,
            "watch_tenant": self._watch_tenant,
            "watch_sessions": self._watch_sessions,
            "watch_user": self._watch_user,
            "watch_keys": self._watch_keys,
            "watch_all_keys": self._watch_all_keys,
        }.get(action if isinstance(action, str) else "")
        if handler is None:
            await self.send_json({"type": "error", "message": "unknown action"})
            return
        await handler(content)

    async def _watch_session(self, content: dict[str, Any]) -> None:
        session_pk = _uuid(content.get("session", ""))
        after = content.get("after_version", 0)
        if isinstance(after, bool):
            after = -1
        if session_pk is None or not isinstance(after, int) or after < 0:
            await self.send_json({"type": "error", "message": "no such session"})
            return
        session = await database_sync_to_async(_session)(str(session_pk))
        if session is None:
            # Erased with its person while the page was away (hidden, or purged since): the page drops what it
            # shows, as when it hears of the erasure live.
            await self.send_json({"type": "session.erased", "session": str(session_pk)})
            return
        # Subscribe before reading the backlog: whatever lands in between arrives twice, never zero times.
        self.sessions.add(str(session.pk))
        await self._subscribe(session_group(session.pk))
        # One batch at a time: with `more`, the page asks again from the last row it got, until it reaches the head.
        rows = await database_sync_to_async(_rows)(str(session.pk), after=after, limit=CATCHUP_LIMIT + 1)
        await self.send_json(
            {
                "type": "catchup",
                "session": str(session.pk),
                "events": rows[:CATCHUP_LIMIT],
                "more": len(rows) > CATCHUP_LIMIT,
            }
        )

    async def _watch_tenant(self, content: dict[str, Any]) -> None:
        found = await database_sync_to_async(_tenant_pks)([content.get("tenant")])
        if not found:
            await self.send_json({"type": "error", "message": "no such tenant"})
            return
        self.tenants.add(str(found[0]))
        await self._subscribe(tenant_group(found[0]))
        more = await self._session_list_catchup(content, found[0])
        await self.send_json({"type": "watching", "what": "tenant", "tenant": str(found[0])} | more)

    async def _watch_sessions(self, content: dict[str, Any]) -> None:
        """The sessions list of every tenant: one group, whatever the number of tenants."""
        self.all_sessions = True
        await self._subscribe(ALL_SESSIONS_GROUP)
        more = await self._session_list_catchup(content, None)
        await self.send_json({"type": "watching", "what": "sessions"} | more)

    async def _session_list_catchup(self, content: dict[str, Any], tenant_pk: uuid.UUID | None) -> dict[str, Any]:
        """A sessions list's catch-up, a batch at a time: the sessions created since `since`, and which of the
        rows it shows (this frame's `shown`) were erased meanwhile (of a tenant, or of every tenant with
        `tenant_pk` None). Returns what the `watching` frame says of the next batch of sessions: `more`, and
        `after` to ask for it with."""
        # The erased rows first: a new session may have taken the session id of one of them.
        erased = await database_sync_to_async(_erased_among)(content.get("shown"))
        if erased:
            tenant = {"tenant": str(tenant_pk)} if tenant_pk is not None else {}
            await self.send_json({"type": "session.erased", **tenant, "sessions": erased})
        since = live_rows.parse_since(content.get("since"))
        after = None
        if since is not None:
            frames, after = await database_sync_to_async(live_rows.session_list_catchup)(
                tenant_pk, since, content.get("after")
            )
            for frame in frames:
                await self.send_json(frame)
        return {"more": after is not None} | ({"after": after} if after is not None else {})

    async def _watch_user(self, content: dict[str, Any]) -> None:
        found = await database_sync_to_async(_tenant_pks)([content.get("tenant")])
        user_id = content.get("user_id")
        if not found or not isinstance(user_id, str) or not user_id or "\x00" in user_id:
            await self.send_json({"type": "error", "message": "no such user"})
            return
        self.users.setdefault(str(found[0]), set()).add(user_id)
        await self._subscribe(tenant_group(found[0]))
        since = live_rows.parse_since(content.get("since"))
        after = None
        if since is not None:
            frames, after = await database_sync_to_async(live_rows.user_page_catchup)(
                found[0], user_id, since, content.get("after")
            )
            for frame in frames:
                await self.send_json(frame)
        # One batch at a time: with `more`, the page asks again from `after`, with the same `since`.
        await self.send_json(
            {"type": "watching", "what": "user", "tenant": str(found[0]), "more": after is not None}
            | ({"after": after} if after is not None else {})
        )

    async def _watch_keys(self, content: dict[str, Any]) -> None:
        if Role.ADMIN not in self.roles:
            await self.send_json({"type": "error", "message": "API keys are for admins"})
            return
        found = await database_sync_to_async(_tenant_pks)(content.get("tenants"))
        since = live_rows.parse_since(content.get("since"))
        for tenant_pk in found:
            self.key_tenants.add(str(tenant_pk))
            await self._subscribe(tenant_group(tenant_pk))
            if since is not None:
                for frame in await database_sync_to_async(live_rows.key_frames)(tenant_pk, since=since):
                    await self.send_json(frame)
        await self.send_json({"type": "watching", "what": "keys", "tenants": [str(pk) for pk in found]})

    async def _watch_all_keys(self, content: dict[str, Any]) -> None:
        """The API keys page of every tenant: one group, whatever the number of tenants."""
        if Role.ADMIN not in self.roles:
            await self.send_json({"type": "error", "message": "API keys are for admins"})
            return
        self.all_keys = True
        await self._subscribe(ALL_KEYS_GROUP)
        since = live_rows.parse_since(content.get("since"))
        if since is not None:
            for frame in await database_sync_to_async(live_rows.key_frames)(None, since=since):
                await self.send_json(frame)
        await self.send_json({"type": "watching", "what": "all_keys"})

    # --- published messages ---------------------------------------------------------------------------

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
            channel = item["channel"].decode() if isinstance(item["channel"], bytes) else item["channel"]
            group = channel.removeprefix(CHANNEL_PREFIX)
            try:
                frames = await self._frames(group, json.loads(item["data"]))
            except Exception:  # one message that cannot be passed on must not end the feed
                logger.exception("live_message_failed", group=group)
                continue
            if frames is None:
                return
            for frame in frames:
                await self.send_json(frame)

    async def _frames(self, group: str, message: dict[str, Any]) -> list[dict[str, Any]] | None:
        """What one published message means for this socket's pages (None: the user is no longer staff)."""
        allowed = await self._allowed(role_for(message.get("type")))
        if allowed is None:
            return None
        kind = message.get("type")
        if group == ALL_SESSIONS_GROUP:
            if not (self.all_sessions and allowed):
                return []
            if kind == "session.created" and (tenant_pk := _uuid(message.get("tenant"))) is not None:
                message["html"] = await database_sync_to_async(live_rows.session_row_html)(
                    tenant_pk, message.get("session")
                )
            return [message]
        if group == ALL_KEYS_GROUP:
            if not (self.all_keys and allowed and isinstance(kind, str) and kind.startswith("api_key.")):
                return []
            if (tenant_pk := _uuid(message.get("tenant"))) is None:
                return []
            found = await database_sync_to_async(live_rows.key_frames)(tenant_pk, key_pk=message.get("key"))
            return [{**frame, "at": message.get("at")} for frame in found]
        if group.startswith("session."):
            if not allowed:
                return []
            session_pk = group.removeprefix("session.")
            if session_pk not in self.sessions:
                return []
            if kind == "event.appended":
                message["session_pk"] = session_pk
                message["events"] = await database_sync_to_async(_rows)(
                    session_pk, after=message["first_version"] - 1, upto=message["version"]
                )
            elif kind == "operation.recorded":
                row = await database_sync_to_async(live_rows.operation_frame)(session_pk, message.get("operation"))
                return [message] + ([{**row, "at": message.get("at")}] if row else [])
            return [message]
        tenant = group.removeprefix("tenant.")
        tenant_pk = uuid.UUID(tenant)
        frames: list[dict[str, Any]] = []
        if tenant in self.tenants and allowed:
            if kind == "session.created":
                message["html"] = await database_sync_to_async(live_rows.session_row_html)(
                    tenant_pk, message.get("session")
                )
            frames.append(message)
        # Whatever the message's role: these are the page's own rows, read again (see Permissions above).
        for user_id in self.users.get(tenant, ()):
            found = await database_sync_to_async(live_rows.user_page_frames)(tenant_pk, user_id, message)
            frames += [{**frame, "at": message.get("at")} for frame in found]
        if tenant in self.key_tenants and allowed and isinstance(kind, str) and kind.startswith("api_key."):
            found = await database_sync_to_async(live_rows.key_frames)(tenant_pk, key_pk=message.get("key"))
            frames += [{**frame, "at": message.get("at")} for frame in found]
        return frames
