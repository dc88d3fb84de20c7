"""Reads of sessions, hot context, event streams, state and the operation journal — always within a tenant.

A view can only reach a session through `get_session(tenant=…)`, and every other read here starts from a
session it was given, so another tenant's rows are never found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from lifecycle_app.lifetimes import lifetimes_for
from lifecycle_app.models import ArchiveKind, ArchiveSegment
from memory_admin.codec import SCHEMA_VERSION, decode_payload, encode_payload
from memory_admin.errors import Archived, NotFound
from memory_admin.metrics import CONTEXT_READS, RECOVERIES
from sessions_app import context, identity
from sessions_app.identity import SessionIdentity
from sessions_app.models import AgentSession, Event, EventSnapshot, EventType, Operation
from sessions_app.state import apply_event, empty_state, upgrade_state
from tenants_app.models import Tenant

CONTEXT_TYPES = (EventType.MESSAGE_ADDED, EventType.CONTEXT_REPLACED)

logger = structlog.get_logger("memory.context")


def sessions_for(tenant: Tenant) -> QuerySet[AgentSession]:
    return AgentSession.objects.filter(tenant=tenant)


SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


# Every agent request starts with this lookup: one prepared statement on the connection's cursor, the row
# turned into a model with the columns' own converters (a RawQuerySet maps the columns again on every call).
SESSION_FIELDS = AgentSession._meta.concrete_fields
SESSION_COLUMNS = ", ".join(field.column for field in SESSION_FIELDS)
_GET_SESSION_SQL = (
    f"SELECT {SESSION_COLUMNS} "  # noqa: S608
    f"FROM {AgentSession._meta.db_table} WHERE tenant_id = %s AND session_id = %s AND erased_at IS NULL"
)
_SESSION_ATTNAMES = [field.attname for field in SESSION_FIELDS]


def get_session(*, tenant: Tenant, session_id: str) -> AgentSession:
    """The tenant's session with this id; NotFound (404) for an unknown id or another tenant's session."""
    row = None
    if SESSION_ID.fullmatch(session_id):
        with connection.cursor() as cursor:
            cursor.execute(_GET_SESSION_SQL, [tenant.pk, session_id])
            row = cursor.fetchone()
    if row is None:
        raise NotFound("No such session.", details={"session_id": session_id})
    return session_from_row(row)


def session_from_row(row: Sequence[Any]) -> AgentSession:
    """A session from a row of SESSION_COLUMNS, the JSON column converted as the ORM converts it."""
    values = list(row)
    for index, field, converter in _session_converters():
        values[index] = converter(values[index], field, connection)
    return AgentSession.from_db(connection.alias, _SESSION_ATTNAMES, values)


def known_session(*, tenant: Tenant, session_id: str) -> SessionIdentity:
    """Who the session is: remembered by this process, or looked up and remembered. Only for statements that
    check the row themselves (that it is still the tenant's and visible; see sessions_app.identity)."""
    return identity.remembered(tenant.pk, session_id) or identity.remember(
        get_session(tenant=tenant, session_id=session_id)
    )


def session_row(session: SessionIdentity) -> AgentSession:
    """The session's row, for writes that need more than its identity (a remembered identity may be gone:
    erased, or the id created again); NotFound then, and this process forgets the identity."""
    if isinstance(session, AgentSession):
        return session
    found = AgentSession.objects.filter(tenant_id=session.tenant_id, session_id=session.session_id).first()
    if found is None:
        identity.forget(session.tenant_id, session.session_id)
        raise NotFound("No such session.", details={"session_id": session.session_id})
    return found


@cache
def _session_converters() -> list[tuple[int, Any, Callable[..., Any]]]:
    """(column index, field, converter) for the columns whose database value needs converting (JSON)."""
    return [
        (index, field, converter)
        for index, field in enumerate(SESSION_FIELDS)
        for converter in field.get_db_converters(connection)  # type: ignore[attr-defined]  # missing in the stubs
    ]


def decode(session: AgentSession, blob: bytes | memoryview) -> Any:
    return decode_payload(blob, tenant_id=session.tenant_id, user_id=session.user_id)


# --- events and state -----------------------------------------------------------------------------------


def events_for(session: AgentSession) -> QuerySet[Event]:
    return Event.objects.filter(session=session)


@dataclass(frozen=True)
class StateView:
    version: int
    state: dict[str, Any]
    snapshot_version: int
    replayed_events: int


def rebuild_state(session: AgentSession, *, version: int) -> StateView:
    """The state after the first `version` events: the nearest snapshot at or below, then replay.

    Rebuilds that replay more than EVENT_SNAPSHOT_EVERY events leave a snapshot behind, so the cost of the
    next one stays bounded even when no worker has taken snapshots.
    """
    snapshot = (
        EventSnapshot.objects.filter(session=session, version__lte=version)
        .order_by("-version")
        .only("version", "state", "schema_version")
        .first()
    )
    base = snapshot.version if snapshot else 0
    state = upgrade_state(decode(session, snapshot.state), snapshot.schema_version) if snapshot else empty_state()
    rows = (
        events_for(session)
        .filter(version__gt=base, version__lte=version)
        .order_by("version")
        .values_list("version", "type", "payload")
    )
    every = settings.EVENT_SNAPSHOT_EVERY
    # A replay longer than a snapshot interval leaves the state at the last boundary it passed behind.
    boundary = version - version % every if version - base > every else 0
    replayed = 0
    for event_version, event_type, payload in rows.iterator(chunk_size=2000):
        if event_version != base + replayed + 1:
            break  # versions are gap-free: a hole is where archived events were
        apply_event(state, event_type, decode(session, payload))
        replayed += 1
        if event_version == boundary:
            save_snapshot(session, version=boundary, state=state)
    if base + replayed != version:
        raise Archived(
            f"The events before version {version} of this session are archived; its state there is read from the "
            "archive.",
            details={"version": version},
        )
    if replayed:
        RECOVERIES.labels(kind="event_replay").inc()
    return StateView(version=version, state=state, snapshot_version=base, replayed_events=replayed)


def save_snapshot(session: AgentSession, *, version: int, state: dict[str, Any]) -> bool:
    """Persist the fold at `version`; a snapshot that exists already is left as it is."""
    blob = encode_payload(state, tenant_id=session.tenant_id, user_id=session.user_id)
    try:
        with transaction.atomic():
            EventSnapshot.objects.create(session=session, version=version, state=blob, schema_version=SCHEMA_VERSION)
    except IntegrityError:
        return False
    return True


# --- hot context ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContextView:
    version: int
    ttl_seconds: int
    # redis: served from the cache; rebuilt: the cache was missing and was rebuilt from Postgres events;
    # postgres: Redis is unreachable, served straight from Postgres.
    source: str
    # The window: its messages, or the JSON texts Redis holds them as (parsed only if someone asks; the API
    # sends them on as they are).
    parsed: list[Any] | None = None
    texts: list[bytes] | None = None

    @property
    def messages(self) -> list[Any]:
        if self.parsed is not None:
            return self.parsed
        return [json.loads(text) for text in self.texts or []]


def _window_from_events(session: AgentSession, *, after: int, upto: int) -> tuple[bool, list[Any]]:
    """(replaced, messages): the context events in (after, upto], newest window only."""
    window = settings.CONTEXT_WINDOW_MESSAGES
    replaced_at = (
        events_for(session)
        .filter(type=EventType.CONTEXT_REPLACED, version__gt=after, version__lte=upto)
        .order_by("-version")
        .values_list("version", "payload")
        .first()
    )
    floor = replaced_at[0] if replaced_at else after
    added = list(
        events_for(session)
        .filter(type=EventType.MESSAGE_ADDED, version__gt=floor, version__lte=upto)
        .order_by("-version")
        .values_list("payload", flat=True)[:window]
    )
    messages = [decode(session, payload) for payload in reversed(added)]
    if replaced_at is not None:
        messages = decode(session, replaced_at[1])["messages"] + messages
    return replaced_at is not None, messages[-window:]


def _window_at(session: AgentSession, *, head: int) -> list[Any]:
    """The window at `head` rebuilt from Postgres: from its events, or, when it reaches back past events that
    were archived (an archived session keeps only its row and the snapshot at its head), from the state there."""
    window = settings.CONTEXT_WINDOW_MESSAGES
    replaced, messages = _window_from_events(session, after=0, upto=head)
    if replaced or len(messages) >= window or head == 0 or events_for(session).filter(version=1).exists():
        return messages
    # Archival takes a stream's oldest events first: without version 1, earlier messages may be in the archive.
    try:
        window_at_head: list[Any] = rebuild_state(session, version=head).state["messages"][-window:]
    except Archived:
        # No snapshot this side of the archived events (archival keeps those the window needs, see
        # lifecycle_app.archival.context_floor, so only an archival by hand gets here): what is left.
        logger.warning("context_window_partly_archived", session=str(session.pk), head=head)
        return messages
    return window_at_head


def _head_now(session: AgentSession) -> int:
    current = AgentSession.objects.filter(pk=session.pk).values_list("head_version", flat=True).first()
    return current if current is not None else -1


def read_context(*, session: AgentSession, touch: bool = True) -> ContextView:
    """The dialogue window: from Redis when it is current, caught up or rebuilt from Postgres when not.

    `touch=False` (the dashboard) looks without counting as the agent's activity.
    """
    head = session.head_version
    ttl = lifetimes_for(session.tenant_id).context_seconds
    cached = context.read_cached(session.pk, ttl=ttl, touch=touch)
    if cached is None:
        CONTEXT_READS.labels(source="postgres").inc()
        messages = _window_at(session, head=head)
        return ContextView(parsed=messages, version=head, ttl_seconds=0, source="postgres")
    if cached.head is not None and cached.head > head and _head_now(session) >= cached.head:
        # An append committed after this request read the session row, and is cached already: the newer
        # window is the answer. (A cache ahead of what Postgres holds, after a restore, say, is rebuilt below.)
        head = cached.head
    if cached.head == head:
        CONTEXT_READS.labels(source="redis").inc()
        return ContextView(
            texts=cached.texts,
            version=head,
            ttl_seconds=cached.ttl_seconds,
            source="rebuilt" if cached.rebuilt else "redis",
        )
    if cached.head is not None and cached.head < head:
        # The cache missed some appends (they raced, or Redis hiccupped): fetch just those from Postgres.
        replaced, newer = _window_from_events(session, after=cached.head, upto=head)
        context.advance(
            session.pk,
            first=cached.head + 1,
            last=head,
            effect=context.ContextEffect(replace=replaced, messages=newer),
            ttl=ttl,
        )
        messages = (newer if replaced else cached.messages + newer)[-settings.CONTEXT_WINDOW_MESSAGES :]
        CONTEXT_READS.labels(source="caught_up").inc()
        return ContextView(
            parsed=messages, version=head, ttl_seconds=ttl, source="rebuilt" if cached.rebuilt else "redis"
        )
    messages = _window_at(session, head=head)
    context.store_rebuilt(session.pk, head=head, messages=messages, ttl=ttl)
    CONTEXT_READS.labels(source="rebuilt").inc()
    return ContextView(parsed=messages, version=head, ttl_seconds=ttl, source="rebuilt")


@dataclass(frozen=True)
class ToolStateView:
    tool: str
    state: Any
    version: int
    ttl_seconds: int
    source: str


def _tool_events(session: AgentSession, *, since_seconds: int) -> QuerySet[Event]:
    cutoff = timezone.now() - timedelta(seconds=since_seconds)
    return events_for(session).filter(
        type__in=(EventType.TOOL_STATE_SET, EventType.TOOL_STATE_CLEARED), created_at__gte=cutoff
    )


def _tool_states_from_events(session: AgentSession) -> dict[str, ToolStateView]:
    """Live tool states according to Postgres: the latest write per tool within the tenant's lifetime (source
    `postgres`: Redis was not asked)."""
    ttl = lifetimes_for(session.tenant_id).tool_state_seconds
    now = timezone.now()
    latest: dict[str, tuple[int, str, Any, Any]] = {}
    for version, event_type, payload, created_at in (
        _tool_events(session, since_seconds=ttl)
        .order_by("version")
        .values_list("version", "type", "payload", "created_at")
    ):
        body = decode(session, payload)
        latest[body["tool"]] = (version, event_type, body.get("state"), created_at)
    views = {}
    for tool, (version, event_type, state, created_at) in latest.items():
        left = ttl - int((now - created_at).total_seconds())
        if event_type == EventType.TOOL_STATE_SET and left > 0:
            views[tool] = ToolStateView(tool=tool, state=state, version=version, ttl_seconds=left, source="postgres")
    return views


def _latest_tool_write(session: AgentSession, tool: str, *, after: int) -> tuple[int, str, Any, datetime] | None:
    """The tool's newest TOOL_STATE_SET or _CLEARED after version `after`: (version, type, state, created_at).
    The payload names the tool, so the (few) tool writes since `after` are read newest first until one is its."""
    rows = (
        events_for(session)
        .filter(type__in=(EventType.TOOL_STATE_SET, EventType.TOOL_STATE_CLEARED), version__gt=after)
        .order_by("-version")
        .values_list("version", "type", "payload", "created_at")
    )
    for version, event_type, payload, created_at in rows:
        body = decode(session, payload)
        if body["tool"] == tool:
            return version, event_type, body.get("state"), created_at
    return None


def _tool_state_from_write(
    session: AgentSession, tool: str, write: tuple[int, str, Any, datetime], *, head: int
) -> ToolStateView:
    """Serve (and cache again, as current at `head`) a write Redis missed; 404 when it cleared or expired."""
    version, event_type, state, created_at = write
    as_of = max(head, version)  # the tool's newest write, committed after the session row was read, maybe
    left = lifetimes_for(session.tenant_id).tool_state_seconds - int((timezone.now() - created_at).total_seconds())
    RECOVERIES.labels(kind="context_rebuild").inc()
    if left <= 0:
        raise NotFound("No state for this tool (expired).", details={"tool": tool})
    if event_type == EventType.TOOL_STATE_CLEARED:
        context.clear_tool_after_commit(session.pk, tool, version=version, ttl=left, as_of=as_of)
        raise NotFound("No state for this tool (cleared).", details={"tool": tool})
    context.set_tool_after_commit(session.pk, tool, version=version, state=state, ttl=left, as_of=as_of)
    return ToolStateView(tool=tool, state=state, version=version, ttl_seconds=left, source="rebuilt")


def read_tool_state(*, session: AgentSession, tool: str) -> ToolStateView:
    """A tool's intermediate state and its remaining lifetime; 404 once it expired or was cleared.

    Redis answers as it is while its copy is known current at the session's head (no query). Once the stream
    has moved past that, one indexed query for a newer write of the tool tells whether Redis missed an update:
    if not, the copy is marked current at the head; if so, that write is served and cached instead.
    """
    head = session.head_version
    cached = context.read_tool(session.pk, tool)
    if isinstance(cached, context.CachedTool):
        # Served as it is when current at `head`, or past it (written after this request read the session row);
        # behind `head`, Redis may have missed a write of the tool since.
        if cached.as_of < head:
            newer = _latest_tool_write(session, tool, after=cached.as_of)
            if newer is not None:
                return _tool_state_from_write(session, tool, newer, head=head)
            context.confirm_tool(session.pk, tool, version=cached.version, as_of=head)
        if cached.cleared:
            raise NotFound("No state for this tool (cleared).", details={"tool": tool})
        return ToolStateView(
            tool=tool, state=cached.state, version=cached.version, ttl_seconds=cached.ttl_seconds, source="redis"
        )
    view = _tool_states_from_events(session).get(tool)
    if view is None:
        raise NotFound("No state for this tool (never set, cleared, or expired).", details={"tool": tool})
    if cached is False:  # Redis is unreachable: Postgres alone answered
        return view
    # A miss (not an outage): put it back with what is left of its lifetime.
    RECOVERIES.labels(kind="context_rebuild").inc()
    context.set_tool_after_commit(
        session.pk,
        tool,
        version=view.version,
        state=view.state,
        ttl=view.ttl_seconds,
        as_of=max(head, view.version),
    )
    return replace(view, source="rebuilt")


def written_tool_state(*, session: AgentSession, tool: str, state: Any, version: int) -> ToolStateView:
    """A tool state just written at `version`, as the write left it: `redis` when the cache took it (the write's
    update after its commit), `postgres` when only its event holds it (Redis unreachable, or the update missed)."""
    cached = context.read_tool(session.pk, tool)
    if isinstance(cached, context.CachedTool) and cached.version >= version:
        return ToolStateView(tool=tool, state=state, version=version, ttl_seconds=cached.ttl_seconds, source="redis")
    ttl = lifetimes_for(session.tenant_id).tool_state_seconds
    return ToolStateView(tool=tool, state=state, version=version, ttl_seconds=ttl, source="postgres")


def list_tool_states(*, session: AgentSession) -> list[ToolStateView]:
    return sorted(_tool_states_from_events(session).values(), key=lambda view: view.tool)


# --- operation journal ----------------------------------------------------------------------------------


def operations_for(session: AgentSession) -> QuerySet[Operation]:
    return Operation.objects.filter(session=session)


def get_operation(*, session: AgentSession, operation_id: Any) -> Operation:
    """The session's operation; a 410 once the session's journal is in the archive, else a 404."""
    operation = operations_for(session).filter(pk=operation_id).first()
    if operation is None:
        refuse_archived_journal(session)
        raise NotFound("No such operation in this session.")
    return operation


def refuse_archived_journal(session: AgentSession) -> None:
    """410 when session archival moved the session's operation journal to the archive (until a restore brings
    it back): a journal read that found nothing must not tell a recovering agent that nothing is pending.

    Asked after the read that found nothing: archival records the archive and deletes the rows in one commit
    (and an archived session records no more), so a read that came before it found the rows."""
    if ArchiveSegment.objects.filter(session=session, kind=ArchiveKind.SESSION, counts__operations__gt=0).exists():
        raise Archived(
            "This session's operation journal is archived; read it from the archive.",
            details={"session_id": session.session_id},
        )


# --- timeline (dashboard) -------------------------------------------------------------------------------

TIMELINE_PAYLOAD_LIMIT = 8_192


def _summary(event_type: str, payload: Any) -> str:
    if not isinstance(payload, dict):
        return ""
    if event_type == EventType.MESSAGE_ADDED:
        content = payload.get("content")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        return f"{payload.get('role')}: {text}"[:200]
    if event_type == EventType.CONTEXT_REPLACED:
        return f"context replaced with {len(payload.get('messages', []))} messages"
    if event_type in (EventType.TOOL_EXECUTED, EventType.TOOL_STATE_SET, EventType.TOOL_STATE_CLEARED):
        return str(payload.get("tool", ""))
    if event_type == EventType.NODE_TRANSITION:
        return f"→ {payload.get('node')}"
    if event_type == EventType.STATE_PATCHED:
        paths = ", ".join(str(op.get("path")) for op in payload.get("patch", [])[:5] if isinstance(op, dict))
        return f"patch {paths}"
    return ""


def timeline_row(session: AgentSession, event: Event) -> dict[str, Any]:
    payload = decode(session, event.payload)
    text = json.dumps(payload, ensure_ascii=False, indent=1)
    return {
        "version": event.version,
        "type": event.type,
        "summary": _summary(event.type, payload),
        "payload": text[:TIMELINE_PAYLOAD_LIMIT],
        "truncated": len(text) > TIMELINE_PAYLOAD_LIMIT,
        "created_at": event.created_at.isoformat(),
    }


def timeline(
    session: AgentSession, *, after: int | None = None, before: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Timeline rows oldest first: the newest `limit` before `before`, or the first `limit` after `after`."""
    events = events_for(session).only("version", "type", "payload", "created_at")
    if after is not None:
        rows = list(events.filter(version__gt=after).order_by("version")[:limit])
    else:
        if before is not None:
            events = events.filter(version__lt=before)
        rows = list(events.order_by("-version")[:limit])[::-1]
    return [timeline_row(session, event) for event in rows]
