"""Writes of LangGraph's model: put a checkpoint, put a task's writes, delete and copy threads (prune,
delete_for_runs and checkpoint retention are in langgraph_app.retention).

Every write is naturally idempotent (a retry stores nothing new), so a client may repeat any of them after
a timeout; they also honour Idempotency-Key at the API.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connection, transaction

from langgraph_app.models import ChannelBlob, PendingWrite, ThreadCheckpoint
from memory_admin.codec import bytes_sealer_for
from memory_admin.errors import Conflict, NotFound, ValidationFailed
from memory_admin.live import publish_all_on_commit, session_group
from memory_admin.sql import run
from sessions_app import identity
from sessions_app.identity import SessionIdentity
from sessions_app.models import AgentSession
from sessions_app.selectors import SESSION_ID, get_session
from sessions_app.services import create_session
from tenants_app.models import Tenant

# LangGraph's fixed indexes for its special channels (langgraph.checkpoint.base.WRITES_IDX_MAP): a task
# writes each at most once, and a later write of one replaces the earlier (an error, then a retry's error).
SPECIAL_WRITE_INDEX = {"__error__": -1, "__scheduled__": -2, "__interrupt__": -3, "__resume__": -4}
# The person a thread works for, when the client does not say (LangGraph has no such notion).
DEFAULT_USER_ID = "langgraph"


@dataclass(frozen=True)
class Blob:
    channel: str
    version: str
    type: str
    data: bytes | None


@dataclass(frozen=True)
class Write:
    channel: str
    type: str
    data: bytes | None


@dataclass(frozen=True)
class CheckpointSave:
    """One `put` of LangGraph: a checkpoint and the values of the channels that changed."""

    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    blobs: Sequence[Blob]


@dataclass(frozen=True)
class WritesSave:
    """One `put_writes` of LangGraph: a task's writes on top of a checkpoint."""

    checkpoint_ns: str
    checkpoint_id: str
    task_id: str
    task_path: str
    writes: Sequence[Write]


def check_thread_id(thread_id: str) -> None:
    """ValidationFailed (400) unless `thread_id` can name a thread (it is a session id)."""
    if not SESSION_ID.fullmatch(thread_id):
        raise ValidationFailed(
            "thread_id must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.",
            details={"thread_id": thread_id[:200]},
        )


def thread_session(*, tenant: Tenant, thread_id: str, create: bool = False, user_id: str = "") -> AgentSession | None:
    """The session that is this tenant's thread `thread_id` (made on demand when `create`), or None."""
    check_thread_id(thread_id)
    try:
        session: AgentSession | None = get_session(tenant=tenant, session_id=thread_id)
    except NotFound:
        session = None
    if session is None and create:
        session, _ = create_session(
            tenant=tenant,
            user_id=user_id or DEFAULT_USER_ID,
            session_id=thread_id,
            metadata={"kind": "langgraph"},
        )
    return session


# A blob already stored for its (channel, version) is kept as it is, and locked until the save (or copy) commits
# (the update's `WHERE false` changes nothing, but the row is locked first): retention, prune and delete_for_runs
# remove a blob only once they hold that lock (retention._delete_unnamed_blobs), so they see the checkpoint of a
# save that found the blob stored and leave it; a save that comes second waits for the removal and stores its
# blob again. Saves, copies and removals all lock blobs in their keys' order (namespace, channel, version), so
# they wait for each other instead of deadlocking: a statement inserts them in that order, and a batch of several
# checkpoints locks those it sends first (_LOCK_STORED_BLOBS_SQL).
_KEEP_STORED_BLOB = "DO UPDATE SET type = EXCLUDED.type WHERE false"

# One statement, so a save outside a transaction is one autocommit round trip: the changed channels' blobs
# (kept when that version is already stored) and the checkpoint (replacing one with the same id).
_PUT_SQL = f"""
    WITH new_blobs AS (
        INSERT INTO {ChannelBlob._meta.db_table} (session_id, checkpoint_ns, channel, version, type, blob)
        SELECT %(session)s, %(ns)s, u.channel, u.version, u.type, u.blob
        FROM unnest(%(channels)s::text[], %(versions)s::text[], %(types)s::text[], %(blobs)s::bytea[])
            AS u(channel, version, type, blob)
        ORDER BY u.channel, u.version
        ON CONFLICT (session_id, checkpoint_ns, channel, version) {_KEEP_STORED_BLOB}
    )
    INSERT INTO {ThreadCheckpoint._meta.db_table}
        (session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, created_at)
    VALUES (%(session)s, %(ns)s, %(id)s, %(parent)s, %(checkpoint)s::jsonb, %(metadata)s::jsonb, now())
    ON CONFLICT (session_id, checkpoint_ns, checkpoint_id)
        DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
"""  # noqa: S608 - table names only


def _checkpoint_saved(tenant: Tenant, session: SessionIdentity, save: CheckpointSave) -> dict[str, Any]:
    return {
        "type": "langgraph.checkpoint.saved",
        "tenant": str(tenant.pk),
        "session": session.session_id,
        "checkpoint_ns": save.checkpoint_ns,
        "checkpoint_id": save.checkpoint_id,
        "parent_checkpoint_id": save.parent_checkpoint_id,
        "step": save.metadata.get("step"),
    }


def _publish_on_commit(session: SessionIdentity, messages: list[dict[str, Any]]) -> None:
    """The dashboard's live updates of the saved checkpoints, in one Redis round trip after commit."""
    publish_all_on_commit([([session_group(session.pk)], message) for message in messages])


def _checkpoint_params(
    session: SessionIdentity, seal: Callable[[bytes], bytes], save: CheckpointSave, *, blobs: bool = True
) -> dict[str, Any]:
    """The bound values of a checkpoint, as _PUT_SQL and the one-statement step name them; with its blobs
    (sealed) as _PUT_SQL's arrays unless `blobs` is False (the step sends them its own way)."""
    document = {key: value for key, value in save.checkpoint.items() if key not in ("channel_values", "id")}
    params: dict[str, Any] = {
        "session": session.pk,
        "ns": save.checkpoint_ns,
        "id": save.checkpoint_id,
        "parent": save.parent_checkpoint_id or "",
        "checkpoint": json.dumps(document),
        "metadata": json.dumps(save.metadata),
    }
    if blobs:
        distinct = _distinct_blobs(save.blobs)
        params["channels"] = [blob.channel for blob in distinct]
        params["versions"] = [blob.version for blob in distinct]
        params["types"] = [blob.type for blob in distinct]
        params["blobs"] = [None if blob.data is None else seal(blob.data) for blob in distinct]
    return params


def _distinct_blobs(blobs: Sequence[Blob]) -> list[Blob]:
    """The first blob sent for each (channel, version), the one stored: a statement cannot lock a row it
    inserted itself (see _KEEP_STORED_BLOB)."""
    first: dict[tuple[str, str], Blob] = {}
    for blob in blobs:
        first.setdefault((blob.channel, blob.version), blob)
    return list(first.values())


def _store_checkpoint(cursor: Any, session: AgentSession, seal: Callable[[bytes], bytes], save: CheckpointSave) -> None:
    cursor.execute(_PUT_SQL, _checkpoint_params(session, seal, save))


_WRITES_SQL = f"""
    INSERT INTO {PendingWrite._meta.db_table}
        (session_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
    SELECT %(session)s, %(ns)s, %(id)s, %(task)s, %(path)s, u.idx, u.channel, u.type, u.blob
    FROM unnest(%(indexes)s::int[], %(channels)s::text[], %(types)s::text[], %(blobs)s::bytea[])
        AS u(idx, channel, type, blob)
    ON CONFLICT (session_id, checkpoint_ns, checkpoint_id, task_id, idx)
"""  # noqa: S608 - table name only
_WRITES_KEEP = _WRITES_SQL + " DO NOTHING"
_WRITES_REPLACE = (
    _WRITES_SQL
    + " DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob,"
    + " task_path = EXCLUDED.task_path"
)


def _store_writes(cursor: Any, session: AgentSession, seal: Callable[[bytes], bytes], save: WritesSave) -> int:
    special = all(write.channel in SPECIAL_WRITE_INDEX for write in save.writes)
    # Two writes of one call with the same index (a special channel twice): as LangGraph's savers store them
    # one after another, the later one wins where writes replace, the earlier one where they are kept.
    keyed: dict[int, Write] = {}
    for position, write in enumerate(save.writes):
        index = write_index(write.channel, position)
        if special or index not in keyed:
            keyed[index] = write
    if not keyed:
        return 0
    cursor.execute(
        _WRITES_REPLACE if special else _WRITES_KEEP,
        {
            "session": session.pk,
            "ns": save.checkpoint_ns,
            "id": save.checkpoint_id,
            "task": save.task_id,
            "path": save.task_path,
            "indexes": list(keyed),
            "channels": [write.channel for write in keyed.values()],
            "types": [write.type for write in keyed.values()],
            "blobs": [None if write.data is None else seal(write.data) for write in keyed.values()],
        },
    )
    return len(save.writes)


def put_checkpoint(
    *,
    tenant: Tenant,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    parent_checkpoint_id: str | None,
    checkpoint: dict[str, Any],
    metadata: dict[str, Any],
    blobs: Sequence[Blob],
    user_id: str = "",
) -> AgentSession:
    """Store a checkpoint of thread `thread_id`; returns the thread's session (made on its first checkpoint).

    `blobs` are the values of the channels that changed, each at its new version; a blob already stored
    for its (channel, version) is kept as it is. Putting the same checkpoint id again replaces its document
    and metadata (as LangGraph's own savers do). All or nothing. ValidationFailed for a bad thread id.
    """
    session = thread_session(tenant=tenant, thread_id=thread_id, create=True, user_id=user_id)
    assert session is not None
    seal = bytes_sealer_for(tenant_id=session.tenant_id, user_id=session.user_id)
    save = CheckpointSave(checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, blobs)
    with connection.cursor() as cursor:
        _store_checkpoint(cursor, session, seal, save)  # one statement: autocommit outside a transaction
    _publish_on_commit(session, [_checkpoint_saved(tenant, session, save)])
    return session


def write_index(channel: str, position: int) -> int:
    return SPECIAL_WRITE_INDEX.get(channel, position)


def put_writes(
    *,
    tenant: Tenant,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    task_id: str,
    task_path: str,
    writes: Sequence[Write],
    user_id: str = "",
) -> int:
    """Store a task's writes on top of checkpoint `checkpoint_id`; returns how many were sent.

    LangGraph's rule: each write is keyed by (checkpoint, task, index), where special channels (errors,
    interrupts, scheduled, resume) take fixed negative indexes. A batch of only special writes replaces
    what is stored under those keys (the last of a channel wins); any other batch is insert-if-absent, so a
    replayed task never changes writes already recorded. The thread is made when it is new: LangGraph saves
    a task's writes while the save of their checkpoint may still be on its way.
    """
    session = thread_session(tenant=tenant, thread_id=thread_id, create=True, user_id=user_id)
    assert session is not None
    if not writes:
        return 0
    seal = bytes_sealer_for(tenant_id=session.tenant_id, user_id=session.user_id)
    with connection.cursor() as cursor:
        return _store_writes(
            cursor, session, seal, WritesSave(checkpoint_ns, checkpoint_id, task_id, task_path, writes)
        )


_LIVE = f"""
    live AS (
        SELECT 1 FROM {AgentSession._meta.db_table}
        WHERE id = %(session)s AND tenant_id = %(tenant)s AND erased_at IS NULL
    )
"""  # noqa: S608 - table name only
_STEP_WRITES = """
    {name} AS (
        INSERT INTO {table} (session_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
        SELECT %(session)s, w.ns, w.id, w.task, w.path, w.idx, w.channel, w.type, decode(w.blob, 'base64')
        FROM step_writes w
        WHERE {which} w.replaces AND EXISTS (SELECT 1 FROM live)
        ON CONFLICT (session_id, checkpoint_ns, checkpoint_id, task_id, idx) {action}
    )
"""
# A graph step in one statement (so one autocommit round trip): the task writes that came with the step's
# checkpoint, insert-if-absent or replacing as `put_writes` decides per task, the changed channels' blobs and
# the checkpoint, as `_PUT_SQL` stores them. Nothing is stored unless the session is still the tenant's and not
# erased (the caller may know it from an earlier save); then the statement returns no row. The writes and the
# blobs travel as two JSON documents (blobs in base64) rather than a score of arrays: binding those cost more
# CPU than the rest of the step.
_STEP_SQL = f"""
    WITH {_LIVE},
    step_writes AS (
        SELECT * FROM jsonb_to_recordset(%(writes)s::jsonb) AS w(
            replaces boolean, ns text, id text, task text, path text, idx int, channel text, type text, blob text)
    ),
    {_STEP_WRITES.format(name="kept", table=PendingWrite._meta.db_table, which="NOT", action="DO NOTHING")},
    {
    _STEP_WRITES.format(
        name="replaced",
        table=PendingWrite._meta.db_table,
        which="",
        action="DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob, "
        "task_path = EXCLUDED.task_path",
    )
},
    new_blobs AS (
        INSERT INTO {ChannelBlob._meta.db_table} (session_id, checkpoint_ns, channel, version, type, blob)
        SELECT %(session)s, %(ns)s, b.channel, b.version, b.type, decode(b.blob, 'base64')
        FROM jsonb_to_recordset(%(step_blobs)s::jsonb) AS b(channel text, version text, type text, blob text)
        WHERE EXISTS (SELECT 1 FROM live)
        ORDER BY b.channel, b.version
        ON CONFLICT (session_id, checkpoint_ns, channel, version) {_KEEP_STORED_BLOB}
    )
    INSERT INTO {ThreadCheckpoint._meta.db_table}
        (session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, created_at)
    SELECT %(session)s, %(ns)s, %(id)s, %(parent)s, %(checkpoint)s::jsonb, %(metadata)s::jsonb, now()
    WHERE EXISTS (SELECT 1 FROM live)
    ON CONFLICT (session_id, checkpoint_ns, checkpoint_id)
        DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
    RETURNING 1
"""  # noqa: S608 - table names only


def _step_params(
    session: SessionIdentity, seal: Callable[[bytes], bytes], writes: Sequence[WritesSave], save: CheckpointSave
) -> dict[str, Any] | None:
    """The parameters of `_STEP_SQL`, or None when two writes share a key (then each must see the one before)."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str, int]] = set()
    for batch in writes:
        replaces = all(write.channel in SPECIAL_WRITE_INDEX for write in batch.writes)
        for position, write in enumerate(batch.writes):
            key = (batch.checkpoint_ns, batch.checkpoint_id, batch.task_id, write_index(write.channel, position))
            if key in seen:
                return None
            seen.add(key)
            rows.append(
                {
                    "replaces": replaces,
                    "ns": batch.checkpoint_ns,
                    "id": batch.checkpoint_id,
                    "task": batch.task_id,
                    "path": batch.task_path,
                    "idx": key[3],
                    "channel": write.channel,
                    "type": write.type,
                    "blob": None if write.data is None else _b64(seal(write.data)),
                }
            )
    blobs = [
        {
            "channel": blob.channel,
            "version": blob.version,
            "type": blob.type,
            "blob": None if blob.data is None else _b64(seal(blob.data)),
        }
        for blob in _distinct_blobs(save.blobs)
    ]
    checkpoint = _checkpoint_params(session, seal, save, blobs=False)
    return {**checkpoint, "writes": orjson.dumps(rows).decode(), "step_blobs": orjson.dumps(blobs).decode()}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _save_step(tenant: Tenant, session: SessionIdentity, writes: list[WritesSave], save: CheckpointSave) -> bool | None:
    """The step in one statement: True when stored, False when the session is gone, None when it cannot be
    one statement (two writes share a key)."""
    seal = bytes_sealer_for(tenant_id=session.tenant_id, user_id=session.user_id)
    params = _step_params(session, seal, writes, save)
    if params is None:
        return None
    if not run(_STEP_SQL, {**params, "tenant": tenant.pk}):
        return False
    _publish_on_commit(session, [_checkpoint_saved(tenant, session, save)])
    return True


# The stored blobs a batch of several checkpoints sends, locked at its start in their keys' order: each of its
# statements locks its own in that order, but the next checkpoint may send one that sorts before them.
_LOCK_STORED_BLOBS_SQL = f"""
    SELECT 1 FROM {ChannelBlob._meta.db_table} b
    JOIN unnest(%(ns)s::text[], %(channels)s::text[], %(versions)s::text[]) AS k(ns, channel, version)
        ON b.checkpoint_ns = k.ns AND b.channel = k.channel AND b.version = k.version
    WHERE b.session_id = %(session)s
    ORDER BY b.checkpoint_ns, b.channel, b.version
    FOR NO KEY UPDATE OF b
"""  # noqa: S608 - table name only


def _lock_stored_blobs(cursor: Any, session: AgentSession, saves: Sequence[CheckpointSave | WritesSave]) -> None:
    keys = {
        (save.checkpoint_ns, blob.channel, blob.version)
        for save in saves
        if isinstance(save, CheckpointSave)
        for blob in save.blobs
    }
    if sum(isinstance(save, CheckpointSave) for save in saves) > 1 and len(keys) > 1:
        namespaces, channels, versions = (list(column) for column in zip(*keys, strict=True))
        params = {"session": session.pk, "ns": namespaces, "channels": channels, "versions": versions}
        cursor.execute(_LOCK_STORED_BLOBS_SQL, params)


def save_batch(
    *, tenant: Tenant, thread_id: str, saves: Sequence[CheckpointSave | WritesSave], user_id: str = ""
) -> tuple[int, int]:
    """Store several `put`s and `put_writes` of one thread, in order, all or nothing (what the client gathered
    while its previous request was in flight); returns (checkpoints, writes) stored. Each save follows the
    rules of `put_checkpoint` and `put_writes`. ValidationFailed for a bad thread id."""
    writes = [save for save in saves if isinstance(save, WritesSave)]
    written = sum(len(save.writes) for save in writes)
    last = saves[-1]
    # The usual batch, a step's writes and the checkpoint after them, is one statement: atomic by itself.
    step = isinstance(last, CheckpointSave) and len(writes) == len(saves) - 1
    # A step of a thread this process saved to lately skips the session lookup (sessions_app.identity): its
    # statement checks the session itself, and a stale memory costs one more statement.
    if step and (known := identity.remembered(tenant.pk, thread_id)) is not None:
        assert isinstance(last, CheckpointSave)
        stored = _save_step(tenant, known, writes, last)
        if stored:
            return 1, written
        if stored is False:
            identity.forget(tenant.pk, thread_id)
    session = thread_session(tenant=tenant, thread_id=thread_id, create=True, user_id=user_id)
    assert session is not None
    identity.remember(session)
    if step:
        assert isinstance(last, CheckpointSave)
        if _save_step(tenant, session, writes, last):
            return 1, written
    seal = bytes_sealer_for(tenant_id=session.tenant_id, user_id=session.user_id)
    messages: list[dict[str, Any]] = []
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_stored_blobs(cursor, session, saves)
        for save in saves:
            if isinstance(save, CheckpointSave):
                _store_checkpoint(cursor, session, seal, save)
                messages.append(_checkpoint_saved(tenant, session, save))
            else:
                _store_writes(cursor, session, seal, save)
        _publish_on_commit(session, messages)
    return len(messages), written


def delete_sessions_rows(session_pks: Sequence[object]) -> int:
    """Remove every LangGraph row of these sessions (delete_thread, prune's `delete`); returns how many
    checkpoints went."""
    deleted = 0
    for model in (PendingWrite, ChannelBlob, ThreadCheckpoint):
        deleted, _ = model.objects.filter(session__in=session_pks).delete()
    return deleted


@transaction.atomic
def delete_thread(*, tenant: Tenant, thread_id: str) -> int:
    """Remove every checkpoint, blob and write of the thread, in every namespace (the session stays, with its
    events). NotFound (404) for a thread the tenant does not have."""
    session = thread_session(tenant=tenant, thread_id=thread_id)
    if session is None:
        raise NotFound("No such thread.", details={"thread_id": thread_id})
    return delete_sessions_rows([session.pk])


_CHECKPOINT_COLUMNS = "checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, created_at"
_BLOB_COLUMNS = "checkpoint_ns, channel, version, type, blob"
_WRITE_COLUMNS = "checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob"

# A thread's checkpoints, blobs and writes copied to another in one statement, so that its three parts read the
# source in one snapshot: a prune or retention of the source committing meanwhile cannot leave copied checkpoints
# naming values that were not copied. What the target holds under the same keys is kept; a blob it holds is
# locked as a save locks it (in key order, see _KEEP_STORED_BLOB): a prune or retention of the target must not
# remove it under the copied checkpoints that name it. Returns how many checkpoints were copied.
_COPY_SQL = f"""
    WITH checkpoints AS (
        INSERT INTO {ThreadCheckpoint._meta.db_table} (session_id, {_CHECKPOINT_COLUMNS})
        SELECT %(target)s, {_CHECKPOINT_COLUMNS} FROM {ThreadCheckpoint._meta.db_table}
        WHERE session_id = %(source)s ORDER BY id
        ON CONFLICT (session_id, checkpoint_ns, checkpoint_id) DO NOTHING
        RETURNING 1
    ), blobs AS (
        INSERT INTO {ChannelBlob._meta.db_table} (session_id, {_BLOB_COLUMNS})
        SELECT %(target)s, {_BLOB_COLUMNS} FROM {ChannelBlob._meta.db_table}
        WHERE session_id = %(source)s ORDER BY checkpoint_ns, channel, version
        ON CONFLICT (session_id, checkpoint_ns, channel, version) {_KEEP_STORED_BLOB}
    ), writes AS (
        INSERT INTO {PendingWrite._meta.db_table} (session_id, {_WRITE_COLUMNS})
        SELECT %(target)s, {_WRITE_COLUMNS} FROM {PendingWrite._meta.db_table}
        WHERE session_id = %(source)s ORDER BY id
        ON CONFLICT (session_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING
    )
    SELECT count(*) FROM checkpoints
"""  # noqa: S608 - table names only


@transaction.atomic
def copy_thread(*, tenant: Tenant, source_thread_id: str, target_thread_id: str) -> int:
    """Copy every checkpoint, blob and write of one thread to another (made for the same person when new);
    returns how many checkpoints were copied. What the target already holds under the same keys is kept. The
    source is read as of one moment (_COPY_SQL): a prune or retention of it meanwhile leaves no copied checkpoint
    without its values. NotFound (404) when the source thread has nothing to copy.

    Conflict (409) when the target is another person's thread: the copies would be sealed with the source
    person's key and sit outside their threads, so their erasure would leave them behind, unreadable, in the
    other person's thread.
    """
    source = thread_session(tenant=tenant, thread_id=source_thread_id)
    if source is None or not ThreadCheckpoint.objects.filter(session=source).exists():
        raise NotFound("No such thread.", details={"thread_id": source_thread_id})
    target = thread_session(tenant=tenant, thread_id=target_thread_id, create=True, user_id=source.user_id)
    assert target is not None
    if target.user_id != source.user_id:
        raise Conflict(
            "The target thread belongs to another user: a thread is copied only to a new thread or one of the "
            "same user.",
            details={"thread_id": source_thread_id, "target_thread_id": target_thread_id},
        )
    with connection.cursor() as cursor:
        cursor.execute(_COPY_SQL, {"source": source.pk, "target": target.pk})
        return int(cursor.fetchone()[0])
