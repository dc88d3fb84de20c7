"""Writes to sessions, their event streams, hot context, tool state and operation journal.

Every write that changes what an agent knows is an event in Postgres first; Redis is updated after commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from checkpoints_app.patching import CopyBudget
from lifecycle_app.lifetimes import lifetimes_for
from memory_admin import live
from memory_admin.codec import (
    SCHEMA_VERSION,
    canonical_json,
    decode_payload,
    dumps,
    encode_payload,
    encoder_for,
)
from memory_admin.errors import Conflict, NotFound, PreconditionFailed, Unprocessable, ValidationFailed
from memory_admin.live import publish_on_commit, session_group, tenant_group
from memory_admin.metrics import EVENT_APPEND_SECONDS
from memory_admin.redis_guard import queue_task
from memory_admin.redis_wire import Batch
from memory_admin.sql import as_jsonb, run
from sessions_app import context, identity
from sessions_app.identity import SessionIdentity
from sessions_app.models import AgentSession, Event, EventType, Operation, OperationStatus, SessionStatus
from sessions_app.selectors import (
    SESSION_COLUMNS,
    SESSION_FIELDS,
    decode,
    get_session,
    rebuild_state,
    session_from_row,
    session_row,
)
from sessions_app.state import apply_event, validate_event
from tenants_app.models import Tenant

# Which status may follow which. Archived is final; completed and failed may only be archived.
TRANSITIONS: dict[str, frozenset[str]] = {
    SessionStatus.ACTIVE: frozenset({SessionStatus.PAUSED, SessionStatus.COMPLETED, SessionStatus.FAILED}),
    SessionStatus.PAUSED: frozenset({SessionStatus.ACTIVE, SessionStatus.COMPLETED, SessionStatus.FAILED}),
    SessionStatus.COMPLETED: frozenset({SessionStatus.ARCHIVED}),
    SessionStatus.FAILED: frozenset({SessionStatus.ARCHIVED}),
    SessionStatus.ARCHIVED: frozenset(),
}
for _status in (SessionStatus.ACTIVE, SessionStatus.PAUSED):
    TRANSITIONS[_status] |= {SessionStatus.ARCHIVED}

WRITABLE = frozenset({SessionStatus.ACTIVE, SessionStatus.PAUSED})

logger = structlog.get_logger("memory.sessions")


def _on_commit(callback: Any) -> None:
    # Side effects are best-effort: a broker or Redis hiccup must not turn a committed write into an error.
    transaction.on_commit(callback, robust=True)


# --- sessions -------------------------------------------------------------------------------------------


def session_message(session: AgentSession, kind: str) -> dict[str, Any]:
    return {
        "type": kind,
        "tenant": str(session.tenant_id),
        "session": session.session_id,
        "status": session.status,
        "version": session.version,
    }


# A session with the id the client chose, or the live session that has it already, in one statement. Its
# SELECT sees the rows as they were when the statement began: a session created concurrently since then is
# found by a second lookup.
_CREATE_SESSION_SQL = f"""
WITH inserted AS (
    INSERT INTO {AgentSession._meta.db_table} ({SESSION_COLUMNS})
    VALUES ({", ".join(["%s"] * len(SESSION_FIELDS))})
    ON CONFLICT (tenant_id, session_id) WHERE erased_at IS NULL DO NOTHING
    RETURNING {SESSION_COLUMNS}
)
SELECT {SESSION_COLUMNS}, true FROM inserted
UNION ALL
SELECT {SESSION_COLUMNS}, false FROM {AgentSession._meta.db_table}
WHERE tenant_id = %s AND session_id = %s AND erased_at IS NULL
"""  # noqa: S608 - table and columns come from the model; every value is bound


def create_session(
    *,
    tenant: Tenant,
    user_id: str,
    session_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[AgentSession, bool]:
    """Start a session for `user_id`; returns it and whether it is new.

    A client may choose the id. Creating an id that exists for the same user returns the existing session
    (so a retried create is harmless); the same id for another user is a 409. One statement either way
    (a LangGraph thread's first save and every agent's first request start here).
    """
    session = AgentSession(tenant=tenant, user_id=user_id, metadata=_as_kept(metadata) if metadata else {})
    if session_id is None:
        session.session_id = str(session.id)
        session.save(force_insert=True)
        created = True
    else:
        session.session_id = session_id
        values = [field.get_db_prep_save(getattr(session, field.attname), connection) for field in SESSION_FIELDS]
        rows = run(_CREATE_SESSION_SQL, [*values, tenant.pk, session_id])
        if rows:
            *columns, created = rows[0]
            session = session_from_row(columns)
        else:  # created by another request after this statement began
            session, created = get_session(tenant=tenant, session_id=session_id), False
        if not created and session.user_id != user_id:
            raise Conflict("A session with this id exists for another user.", details={"session_id": session_id})
    if created:
        ttl = lifetimes_for(tenant.pk).context_seconds
        _on_commit(lambda: context.prime(session.pk, ttl=ttl))
        publish_on_commit(
            [tenant_group(tenant.pk)], {**session_message(session, "session.created"), "user_id": session.user_id}
        )
    return session, created


def merge_metadata(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: objects merge recursively (into {} where the target is not an object, so
    their nulls remove nothing and are dropped too), null removes a key, anything else replaces."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            target = merged.get(key)
            merged[key] = merge_metadata(target if isinstance(target, dict) else {}, value)
        else:
            merged[key] = value
    return merged


def _as_kept(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata as its jsonb column will keep and give it back, checked against the size limit; a 400 when
    it is over, as sent or as kept.

    PostgreSQL keeps JSON numbers as numeric, so some floats come back as other numbers (1e16 as the integer
    10000000000000000, -0.0 as 0.0, 1e300 as 301 digits): what the limit counts, an update compares and a
    write answers is what a read will give. Metadata without a float is kept as it is, without asking.
    """
    _check_metadata_size(metadata)  # as sent, first: bounds what PostgreSQL is asked to spell out
    kept = as_jsonb(metadata)
    if kept is not metadata:
        _check_metadata_size(kept)
    return kept


def _check_metadata_size(metadata: dict[str, Any]) -> None:
    if len(dumps(metadata)) > settings.SESSION_METADATA_MAX_BYTES:
        raise ValidationFailed(
            f"Session metadata may hold at most {settings.SESSION_METADATA_MAX_BYTES} bytes of JSON.",
            details={"field": "metadata"},
        )


@transaction.atomic
def update_session(
    *,
    session: AgentSession,
    status: str | None = None,
    metadata_patch: dict[str, Any] | None = None,
    expected_version: set[int] | None = None,
) -> AgentSession:
    """Change a session's status (along TRANSITIONS) and/or merge into its metadata.

    `expected_version` holds the versions the caller's If-Match accepts: another version is a 412 carrying
    the current one. An illegal status change is a 409 naming the allowed ones. A session erased since it was
    read is a 404, as for any write.
    """
    locked = AgentSession.objects.select_for_update().filter(pk=session.pk).first()
    if locked is None:  # erased since it was read: an erasure approval held the row, and committed
        raise NotFound("No such session.", details={"session_id": session.session_id})
    if expected_version is not None and locked.version not in expected_version:
        raise PreconditionFailed("The session changed since you read it.", details={"current_version": locked.version})
    changed = False
    if status is not None and status != locked.status:
        allowed = TRANSITIONS[locked.status]
        if status not in allowed:
            raise Conflict(
                f"A {locked.status} session cannot become {status}.",
                details={"status": locked.status, "allowed": sorted(allowed)},
            )
        if status == SessionStatus.ARCHIVED:
            locked.archived_from = locked.status
        locked.status = status
        changed = True
    if metadata_patch:
        merged = _as_kept(merge_metadata(locked.metadata, metadata_patch))
        # Compared as JSON: Python's == takes true for 1 and 2.0 for 2, which would drop such a change unsaved.
        changed = changed or canonical_json(merged) != canonical_json(locked.metadata)
        locked.metadata = merged
    if changed:
        locked.version += 1
        locked.updated_at = timezone.now()
        locked.save(update_fields=["status", "archived_from", "metadata", "version", "updated_at"])
        groups = [tenant_group(locked.tenant_id), session_group(locked.pk)]
        publish_on_commit(groups, session_message(locked, "session.updated"))
    return locked


# --- events ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    type: str
    payload: Any


@dataclass(frozen=True, slots=True)
class Appended:
    """An event as the append acknowledges it (the stored row without its payload)."""

    version: int
    type: str
    created_at: datetime


@dataclass(frozen=True)
class AppendResult:
    events: Sequence[Appended | Event]
    head_version: int
    # True when an earlier request with the same Idempotency-Key had already appended these events.
    replayed: bool = False


class _Replay(Exception):
    """Unwinds the transaction (and its version bump) when the batch was appended before."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events


def _context_effect(batch: list[NewEvent]) -> context.ContextEffect:
    replace, messages = False, []
    for event in batch:
        if event.type == EventType.CONTEXT_REPLACED:
            replace, messages = True, list(event.payload["messages"])
        elif event.type == EventType.MESSAGE_ADDED:
            messages.append(event.payload)
    return context.ContextEffect(replace=replace, messages=messages)


def append_events(
    *,
    session: SessionIdentity,
    events: list[NewEvent],
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> AppendResult:
    """Append a batch to the session's stream with the next versions, all or nothing.

    Versions are gap-free and unique however many appends race: the session row is the lock. With
    `expected_version`, a stream that has moved on is a 409 carrying the current version. A STATE_PATCHED
    patch that does not apply to the state it would follow is a 400, as is one whose `copy` operations would copy
    more than a request may carry (API_MAX_BODY_BYTES, shared by the batch's patches) or that would nest the
    state's data deeper than MAX_JSON_DEPTH; nothing is stored then. The same `idempotency_key` again (even
    sent while the first is still running) returns the first append's events without appending anything; with
    other events it is a 422.

    `session` may be a `SessionRef` this process remembered (see sessions_app.identity): the append's own
    statement checks the row, and a session id that now names another row is appended to that one.
    """
    if not events:
        raise ValidationFailed("Send at least one event.", details={"field": "events"})
    if len(events) > settings.EVENT_BATCH_MAX:
        raise ValidationFailed(f"At most {settings.EVENT_BATCH_MAX} events per request.")
    for event in events:
        validate_event(event.type, event.payload)
    with EVENT_APPEND_SECONDS.time():
        if connection.in_atomic_block or any(event.type == EventType.STATE_PATCHED for event in events):
            session = session_row(session)
            if idempotency_key:
                earlier = _appended_with(session, idempotency_key, events)
                if earlier:
                    return AppendResult(events=earlier, head_version=earlier[-1].version, replayed=True)
            try:
                return _append(session, events, expected_version, idempotency_key)
            except _Replay as replay:
                return AppendResult(events=replay.events, head_version=replay.events[-1].version, replayed=True)
        try:
            return _append_in_one_statement(session, events, expected_version, idempotency_key)
        except _Moved as moved:
            try:
                return _append_in_one_statement(moved.session, events, expected_version, idempotency_key)
            except _Moved:  # erased and created again twice while this append ran
                raise Conflict("The session was replaced while this append ran; send it again.") from None


def _appended_with(session: SessionIdentity, idempotency_key: str, events: list[NewEvent]) -> list[Event]:
    """The events an earlier append with this key stored (none: the key is new here). A key names one request:
    when those are not `events` it is a 422, however long ago the first was sent (the Redis record of its
    answer, which says the same, may have expired or been lost; this is the check that outlives it)."""
    earlier = list(Event.objects.filter(session_id=session.pk, idempotency_key=idempotency_key).order_by("version"))
    if earlier and not _same_batch(session, earlier, events):
        raise Unprocessable(
            "This Idempotency-Key was already used with a different request body.",
            details={"header": "Idempotency-Key"},
        )
    return earlier


def _same_batch(session: SessionIdentity, stored: list[Event], events: list[NewEvent]) -> bool:
    if len(stored) != len(events):
        return False
    return all(
        row.type == event.type
        and canonical_json(decode_payload(row.payload, tenant_id=session.tenant_id, user_id=session.user_id))
        == canonical_json(event.payload)
        for row, event in zip(stored, events, strict=True)
    )


# The common append in one round trip: reserve the versions on the session row (its lock serialises
# concurrent appends) and insert the events, in a single autocommit statement — atomic by itself. A row
# only comes back when the session is the tenant's, visible, writable, (if asked) at the expected version,
# and (with an Idempotency-Key) holds no batch appended with that key yet. That last check sees the events
# as they were when the statement began: a retry that waited for the lock while the first request appended
# passes it, and its first event (which claims the key) breaks the unique index `event_idempotency_key_once`
# instead, the whole statement undone (see _append_in_one_statement).
_RESERVE = f"""
WITH reserved AS (
  UPDATE {AgentSession._meta.db_table}
     SET head_version = head_version + %(count)s, last_activity_at = %(now)s
   WHERE id = %(session)s AND tenant_id = %(tenant)s AND erased_at IS NULL AND status IN ('active', 'paused')
     AND (%(expected)s::bigint IS NULL OR head_version = %(expected)s::bigint)
     AND (%(key)s::text IS NULL OR NOT EXISTS (
       SELECT 1 FROM {Event._meta.db_table} WHERE session_id = %(session)s AND idempotency_key = %(key)s::text))
  RETURNING head_version - %(count)s AS base
)
INSERT INTO {Event._meta.db_table}
       (session_id, version, type, payload, schema_version, idempotency_key, claims_key, created_at)
"""  # noqa: S608 - table names come from the models; every value is bound
# One event (the usual append) binds scalars; a batch binds arrays.
_APPEND_ONE_SQL = f"""{_RESERVE}
SELECT %(session)s, reserved.base + 1, %(type)s, %(payload)s, %(schema)s, %(key)s::text,
       CASE WHEN %(key)s::text IS NOT NULL THEN true END, %(now)s
  FROM reserved
RETURNING version
"""  # noqa: S608 - table names come from the models; every value is bound
_APPEND_BATCH_SQL = f"""{_RESERVE}
SELECT %(session)s, reserved.base + batch.ord, batch.type, batch.payload, %(schema)s, %(key)s::text,
       CASE WHEN %(key)s::text IS NOT NULL AND batch.ord = 1 THEN true END, %(now)s
  FROM reserved, unnest(%(ords)s::int[], %(types)s::text[], %(payloads)s::bytea[]) AS batch(ord, type, payload)
RETURNING version
"""  # noqa: S608 - table names come from the models; every value is bound


class _Moved(Exception):
    """The remembered session id now names another row (erased and created again): append there."""

    def __init__(self, session: AgentSession) -> None:
        self.session = session


def _append_in_one_statement(
    session: SessionIdentity, events: list[NewEvent], expected_version: int | None, idempotency_key: str | None
) -> AppendResult:
    now = timezone.now()
    encode = encoder_for(tenant_id=session.tenant_id, user_id=session.user_id)
    payloads = [encode(event.payload) for event in events]
    params: dict[str, Any] = {
        "count": len(events),
        "now": now,
        "session": session.pk,
        "tenant": session.tenant_id,
        "expected": expected_version,
        "schema": SCHEMA_VERSION,
        "key": idempotency_key or None,
    }
    try:
        if len(events) == 1:
            params.update(type=events[0].type, payload=payloads[0])
            versions = [row[0] for row in run(_APPEND_ONE_SQL, params)]
        else:
            params.update(
                ords=list(range(1, len(events) + 1)), types=[event.type for event in events], payloads=payloads
            )
            versions = sorted(row[0] for row in run(_APPEND_BATCH_SQL, params))
    except IntegrityError as exc:
        if _violated(exc) != "event_idempotency_key_once":
            raise
        versions = []  # a retry that raced the first request with its key: nothing stored, it answers below
    if not versions:
        return _explain_refusal(session, events, expected_version, idempotency_key)
    rows = [Appended(version, event.type, now) for version, event in zip(versions, events, strict=True)]
    first, last = versions[0], versions[-1]
    _after_append(session, rows, events, first=first, last=last)
    return AppendResult(events=rows, head_version=last)


def _violated(error: IntegrityError) -> str | None:
    """The name of the constraint a statement broke (psycopg's diagnostics), if it says."""
    diagnostics = getattr(error.__cause__, "diag", None)
    return getattr(diagnostics, "constraint_name", None)


def _explain_refusal(
    session: SessionIdentity, events: list[NewEvent], expected_version: int | None, idempotency_key: str | None
) -> AppendResult:
    """Why the one-statement append inserted nothing: a replay of an earlier batch with the same key, or the
    same errors the transactional path raises. Raises `_Moved` when the id now names another session."""
    current = (
        AgentSession.objects.filter(tenant_id=session.tenant_id, session_id=session.session_id)
        .values_list("pk", "head_version", "status")
        .first()
    )
    if current is None:
        identity.forget(session.tenant_id, session.session_id)
        raise NotFound("No such session.", details={"session_id": session.session_id})
    pk, head, status = current
    if pk != session.pk:
        moved = AgentSession.objects.get(pk=pk)
        identity.remember(moved)
        raise _Moved(moved)
    if idempotency_key:
        earlier = _appended_with(session, idempotency_key, events)
        if earlier:
            return AppendResult(events=earlier, head_version=earlier[-1].version, replayed=True)
    if status not in WRITABLE:
        raise Conflict(f"A {status} session accepts no more events.", details={"status": status})
    raise Conflict(
        "The stream has moved on since the expected version.",
        details={"current_version": head, "expected_version": expected_version},
    )


_EVENT_TABLE = Event._meta.db_table
_SESSION_TABLE = AgentSession._meta.db_table
# One statement takes the session row's lock and reserves the versions; concurrent appends queue behind it.
_RESERVE_SQL = (
    f"UPDATE {_SESSION_TABLE} SET head_version = head_version + %s, last_activity_at = %s "  # noqa: S608
    "WHERE id = %s AND erased_at IS NULL RETURNING head_version, status"
)
_INSERT_SQL = (
    f"INSERT INTO {_EVENT_TABLE} "  # noqa: S608
    "(session_id, version, type, payload, schema_version, idempotency_key, claims_key, created_at) VALUES "
)


@transaction.atomic
def _append(
    session: AgentSession, events: list[NewEvent], expected_version: int | None, idempotency_key: str | None
) -> AppendResult:
    count = len(events)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE_SQL, [count, now, session.pk])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such session.")
    head, status = row[0] - count, row[1]
    if idempotency_key:
        earlier = _appended_with(session, idempotency_key, events)
        if earlier:
            raise _Replay(earlier)
    if status not in WRITABLE:
        raise Conflict(f"A {status} session accepts no more events.", details={"status": status})
    if expected_version is not None and expected_version != head:
        raise Conflict(
            "The stream has moved on since the expected version.",
            details={"current_version": head, "expected_version": expected_version},
        )
    if any(event.type == EventType.STATE_PATCHED for event in events):
        # A rebuilt state is the append's own to change. Its patches may copy what one request could carry, in
        # all: a small `copy` patch would otherwise double the state again and again.
        budget = CopyBudget(settings.API_MAX_BODY_BYTES)
        state = rebuild_state(session, version=head).state
        try:
            for event in events:
                apply_event(state, event.type, event.payload, copy_budget=budget)
        except RecursionError:
            raise ValidationFailed(
                "The session's state is nested too deeply to be patched.", details={"field": "payload.patch"}
            ) from None
    encode = encoder_for(tenant_id=session.tenant_id, user_id=session.user_id)
    rows = [
        Event(
            session_id=session.pk,
            version=head + offset + 1,
            type=event.type,
            payload=encode(event.payload),
            schema_version=SCHEMA_VERSION,
            idempotency_key=idempotency_key or None,
            # The key is checked above under the row's lock; the claim stops a one-statement append that
            # began before this one committed (its check cannot see these rows).
            claims_key=True if idempotency_key and offset == 0 else None,
            created_at=now,
        )
        for offset, event in enumerate(events)
    ]
    params: list[Any] = []
    for event_row in rows:
        params += [
            session.pk,
            event_row.version,
            event_row.type,
            event_row.payload,
            SCHEMA_VERSION,
            event_row.idempotency_key,
            event_row.claims_key,
            now,
        ]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * count), params)
    first, last = head + 1, head + count
    _on_commit(lambda: _after_append(session, rows, events, first=first, last=last))
    return AppendResult(events=rows, head_version=last)


def _after_append(
    session: SessionIdentity, rows: Sequence[Appended | Event], events: list[NewEvent], *, first: int, last: int
) -> None:
    """Everything an append tells Redis, in one round trip: the context window, tool states, live message."""
    ttls = lifetimes_for(session.tenant_id)
    batch = Batch()
    context.advance(
        session.pk, first=first, last=last, effect=_context_effect(events), ttl=ttls.context_seconds, batch=batch
    )
    for row, event in zip(rows, events, strict=True):
        if event.type == EventType.TOOL_STATE_SET:
            context.set_tool_after_commit(
                session.pk,
                event.payload["tool"],
                version=row.version,
                state=event.payload.get("state"),
                ttl=ttls.tool_state_seconds,
                as_of=last,
                batch=batch,
            )
        elif event.type == EventType.TOOL_STATE_CLEARED:
            context.clear_tool_after_commit(
                session.pk,
                event.payload["tool"],
                version=row.version,
                ttl=ttls.tool_state_seconds,
                as_of=last,
                batch=batch,
            )
    live.queue(
        batch,
        [session_group(session.pk)],
        {
            "type": "event.appended",
            "tenant": str(session.tenant_id),
            "session": session.session_id,
            "first_version": first,
            "version": last,
            "count": len(events),
            "event_type": events[-1].type,
        },
    )
    try:
        batch.execute()
    except redis.RedisError as exc:
        logger.warning("after_append_redis_unavailable", error=type(exc).__name__)
    every = settings.EVENT_SNAPSHOT_EVERY
    if (first - 1) // every != last // every:  # the append reached a multiple of `every` (one of first..last)
        from sessions_app.tasks import take_snapshot

        # Best-effort: a replay past this boundary leaves the snapshot anyway, so a down broker costs nothing.
        queue_task(take_snapshot, str(session.pk), last - last % every)


def append_messages(
    *,
    session: SessionIdentity,
    messages: list[Any],
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> AppendResult:
    """Append chat messages to the dialogue context: each is a MESSAGE_ADDED event, then cached in Redis."""
    return append_events(
        session=session,
        events=[NewEvent(EventType.MESSAGE_ADDED, message) for message in messages],
        expected_version=expected_version,
        idempotency_key=idempotency_key,
    )


def replace_context(*, session: AgentSession, messages: list[Any], idempotency_key: str | None = None) -> AppendResult:
    """Replace the whole dialogue context (a CONTEXT_REPLACED event)."""
    return append_events(
        session=session,
        events=[NewEvent(EventType.CONTEXT_REPLACED, {"messages": messages})],
        idempotency_key=idempotency_key,
    )


def set_tool_state(*, session: AgentSession, tool: str, state: Any, idempotency_key: str | None = None) -> AppendResult:
    """Store a tool's intermediate state (expires after the tenant's tool-state lifetime without a new write)."""
    return append_events(
        session=session,
        events=[NewEvent(EventType.TOOL_STATE_SET, {"tool": tool, "state": state})],
        idempotency_key=idempotency_key,
    )


def clear_tool_state(*, session: AgentSession, tool: str) -> AppendResult:
    return append_events(session=session, events=[NewEvent(EventType.TOOL_STATE_CLEARED, {"tool": tool})])


# --- operation journal ----------------------------------------------------------------------------------


def _operation_message(operation: Operation, session: AgentSession) -> dict[str, Any]:
    return {
        "type": "operation.recorded",
        "tenant": str(session.tenant_id),
        "session": session.session_id,
        "operation": str(operation.pk),
        "name": operation.name,
        "status": operation.status,
    }


def _journal_status(session: AgentSession) -> str:
    """The session's status, its row share-locked until commit, so that archival (which sets the status,
    then moves the journal) cannot slip in between this check and the journal write."""
    with connection.cursor() as cursor:
        cursor.execute(_SHARE_SESSION_SQL, [session.pk])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such session.")
    status: str = row[0]
    return status


_SHARE_SESSION_SQL = f"SELECT status FROM {_SESSION_TABLE} WHERE id = %s AND erased_at IS NULL FOR SHARE"  # noqa: S608


@transaction.atomic
def record_operation(*, session: AgentSession, name: str, key: str, params: Any) -> tuple[Operation, bool]:
    """Record a side-effecting operation as pending before the agent runs it (write-ahead).

    Recording the same intent (`key`, `name` and `params`) again returns the first record and False, whatever
    its status now; another name or params under a recorded key is a 409 carrying what was recorded, and
    changes nothing. A session that accepts no more events (completed, failed, archived) records no new
    intent either: 409.
    """
    session_status = _journal_status(session)
    if session_status not in WRITABLE:
        if existing := Operation.objects.filter(session=session, key=key).first():
            return _same_intent(session, existing, name=name, params=params), False
        raise Conflict(f"A {session_status} session records no more operations.", details={"status": session_status})
    encoded = encode_payload(params, tenant_id=session.tenant_id, user_id=session.user_id)
    try:
        with transaction.atomic():
            operation = Operation.objects.create(session=session, name=name, key=key, params=encoded)
    except IntegrityError:
        existing = Operation.objects.get(session=session, key=key)
        return _same_intent(session, existing, name=name, params=params), False
    publish_on_commit([session_group(session.pk)], _operation_message(operation, session))
    return operation, True


def _same_intent(session: AgentSession, recorded: Operation, *, name: str, params: Any) -> Operation:
    """`recorded` when it is the intent `name` and `params` describe (a retry); a 409 carrying it otherwise: a key
    names one intent, and answering another with its record would tell the agent that intent was recorded."""
    kept = decode(session, recorded.params)
    if recorded.name != name or canonical_json(kept) != canonical_json(params):
        raise Conflict(
            "This key names another operation in the journal.",
            details={"operation": str(recorded.pk), "status": recorded.status, "name": recorded.name, "params": kept},
        )
    return recorded


@transaction.atomic
def finish_operation(*, session: AgentSession, operation_id: Any, status: str, outcome: Any) -> Operation:
    """Mark a pending operation completed (with its result) or failed (with its error).

    Finishing it again the same way with the same result (or error) is a harmless retry and returns it; with
    another result, or finishing a finished operation the other way, is a 409 carrying what was recorded, and
    changes nothing. A completed or failed session's operations can still be finished (recording what a
    side effect did is how a crashed agent's successor closes its journal); an archived session's journal
    went to the archive with it: 409.
    """
    if _journal_status(session) == SessionStatus.ARCHIVED:
        raise Conflict(
            "An archived session's operations are in the archive.", details={"status": SessionStatus.ARCHIVED}
        )
    operation = Operation.objects.select_for_update().filter(session=session, pk=operation_id).first()
    if operation is None:
        raise NotFound("No such operation in this session.")
    if operation.status != OperationStatus.PENDING:
        recorded = operation.result if operation.status == OperationStatus.COMPLETED else operation.error
        kept = None if recorded is None else decode(session, recorded)
        if operation.status == status and canonical_json(kept) == canonical_json(outcome):
            return operation
        field = "result" if operation.status == OperationStatus.COMPLETED else "error"
        raise Conflict(
            f"The operation is already {operation.status}"
            + (f" with another {field}." if operation.status == status else "."),
            details={"status": operation.status, "operation": str(operation.pk), field: kept},
        )
    encoded = encode_payload(outcome, tenant_id=session.tenant_id, user_id=session.user_id)
    operation.status = status
    if status == OperationStatus.COMPLETED:
        operation.result = encoded
    else:
        operation.error = encoded
    operation.finished_at = timezone.now()
    operation.save(update_fields=["status", "result", "error", "finished_at"])
    publish_on_commit([session_group(session.pk)], _operation_message(operation, session))
    return operation
