"""Removals of LangGraph checkpoints besides delete_thread: `prune` and `delete_for_runs`, which a client asks
for, and checkpoint retention's steps (run by lifecycle_app's job). Each removes the checkpoints' writes and the
channel values no checkpoint names any more, leaving those a racing save found stored (see
services._KEEP_STORED_BLOB), and refuses or keeps whole a thread that uses a DeltaChannel. Taking those values'
locks runs again when the database picks it as a deadlock's victim (see _delete_unnamed_blobs).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import structlog
from django.db import OperationalError, connection, transaction
from django.db.models import Q

from langgraph_app.models import ChannelBlob, PendingWrite, ThreadCheckpoint
from langgraph_app.services import delete_sessions_rows
from memory_admin.codec import open_bytes
from memory_admin.errors import Erased, IntegrityFailure, Unprocessable, ValidationFailed
from sessions_app.models import AgentSession
from sessions_app.selectors import SESSION_ID
from tenants_app.models import Tenant

PRUNE_STRATEGIES = ("keep_latest", "delete")
# Times the locking of the values to remove runs when the database picks it as a deadlock's victim.
DEADLOCK_ATTEMPTS = 3

logger = structlog.get_logger("memory.langgraph")


def _sessions(tenant: Tenant, thread_ids: Sequence[str]) -> list[object]:
    valid = [thread_id for thread_id in thread_ids if SESSION_ID.fullmatch(thread_id)]
    return list(AgentSession.objects.filter(tenant=tenant, session_id__in=valid).values_list("pk", flat=True))


# Blobs no checkpoint names are removed in two statements. The first locks the candidates: a save that found one
# stored holds it until it commits (services._KEEP_STORED_BLOB), so once the locks are taken every such save's
# checkpoint is committed. The second, in a snapshot taken after the locks, removes those no checkpoint of their
# thread names (one statement would remove a blob it waited for, as its snapshot predates the save's checkpoint).
# The locks are taken in the blobs' key order, as saves and copies take theirs (services._KEEP_STORED_BLOB), so
# that each waits for the other instead of deadlocking.

# The threads' blobs no checkpoint names (prune and delete_for_runs sweep them all).
_LOCK_UNNAMED_BLOBS_SQL = f"""
    SELECT b.id FROM {ChannelBlob._meta.db_table} b
    WHERE b.session_id = ANY(%(sessions)s) AND NOT EXISTS (
        SELECT 1 FROM {ThreadCheckpoint._meta.db_table} c
        WHERE c.session_id = b.session_id AND c.checkpoint_ns = b.checkpoint_ns
          AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version
    )
    ORDER BY b.session_id, b.checkpoint_ns, b.channel, b.version
    FOR UPDATE OF b
"""  # noqa: S608 - table names only

# The threads' blobs of these (namespace, channel, version), those the checkpoints removed named (retention).
_LOCK_NAMED_BLOBS_SQL = f"""
    SELECT b.id FROM {ChannelBlob._meta.db_table} b
    JOIN unnest(%(ns)s::text[], %(channels)s::text[], %(versions)s::text[]) AS k(ns, channel, version)
        ON b.checkpoint_ns = k.ns AND b.channel = k.channel AND b.version = k.version
    WHERE b.session_id = ANY(%(sessions)s)
    ORDER BY b.session_id, b.checkpoint_ns, b.channel, b.version
    FOR UPDATE OF b
"""  # noqa: S608 - table name only

# Of the locked blobs, the ones no checkpoint of their thread names (one pass over the threads' checkpoints, not
# one per blob).
_UNNAMED_BLOBS_SQL = f"""
    WITH named AS (
        SELECT c.session_id, c.checkpoint_ns AS ns, v.key AS channel, v.value AS version
        FROM {ThreadCheckpoint._meta.db_table} c
        CROSS JOIN LATERAL jsonb_each_text(
            CASE WHEN jsonb_typeof(c.checkpoint -> 'channel_versions') = 'object'
                THEN c.checkpoint -> 'channel_versions' END
        ) v
        WHERE c.session_id = ANY(%(sessions)s)
    )
    DELETE FROM {ChannelBlob._meta.db_table} b
    WHERE b.id = ANY(%(ids)s) AND NOT EXISTS (
        SELECT 1 FROM named n
        WHERE n.session_id = b.session_id AND n.ns = b.checkpoint_ns AND n.channel = b.channel
          AND n.version = b.version
    )
"""  # noqa: S608 - table names only


def _deadlocked(exc: OperationalError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, psycopg.Error) and cause.sqlstate == "40P01"  # deadlock_detected


def _delete_unnamed_blobs(
    cursor: Any, session_pks: Sequence[object], *, named: tuple[list[str], list[str], list[str]] | None = None
) -> None:
    """Remove the threads' blobs no checkpoint names: all of them, or only those at the (namespaces, channels,
    versions) `named` gives. A save or a copy that found such a blob stored keeps it (see above).

    A writer that locks the same blobs in another order (a caller's transaction of several saves) can close a
    cycle with the locking: when the database picks it as the victim, only the locks are rolled back (a
    savepoint), so the writer goes on, and they are taken again, up to DEADLOCK_ATTEMPTS times; then the
    OperationalError goes up."""
    sessions = list(session_pks)
    attempt = 1
    while True:
        try:
            with transaction.atomic():
                if named is None:
                    cursor.execute(_LOCK_UNNAMED_BLOBS_SQL, {"sessions": sessions})
                else:
                    namespaces, channels, versions = named
                    keys = {"sessions": sessions, "ns": namespaces, "channels": channels, "versions": versions}
                    cursor.execute(_LOCK_NAMED_BLOBS_SQL, keys)
                ids = [row[0] for row in cursor.fetchall()]
            break
        except OperationalError as exc:
            if not _deadlocked(exc) or attempt == DEADLOCK_ATTEMPTS:
                raise
            logger.info("langgraph_blobs_deadlocked", attempt=attempt)
            attempt += 1
    if ids:
        cursor.execute(_UNNAMED_BLOBS_SQL, {"sessions": sessions, "ids": ids})


@transaction.atomic
def prune_threads(*, tenant: Tenant, thread_ids: Sequence[str], strategy: str) -> int:
    """`keep_latest`: keep each namespace's newest checkpoint of each thread, with its writes and the blobs
    it names, and remove the other checkpoints with their writes (writes stored ahead of a checkpoint not yet
    saved stay; see _KEEP_LATEST_SQL, also for subgraph calls); `delete`: remove everything of the threads.
    Unknown threads are skipped. A save or copy racing the prune keeps its blobs (services._KEEP_STORED_BLOB).
    Returns how many checkpoints went. ValidationFailed for another strategy; Unprocessable (422), naming them
    in `delta_channel_threads`, when keep_latest is asked of threads that use a DeltaChannel (nothing is
    pruned then), as PostgresSaver refuses them."""
    if strategy not in PRUNE_STRATEGIES:
        raise ValidationFailed(
            f"strategy must be one of {', '.join(PRUNE_STRATEGIES)}.", details={"strategy": strategy}
        )
    session_pks = _sessions(tenant, thread_ids)
    if not session_pks:
        return 0
    if strategy == "delete":
        return delete_sessions_rows(session_pks)
    if delta := _delta_channel_threads(session_pks):
        raise Unprocessable(
            f"keep_latest can't prune threads that use a DeltaChannel: {', '.join(delta)}",
            details={"delta_channel_threads": delta},
        )
    with connection.cursor() as cursor:
        cursor.execute(_KEEP_LATEST_SQL, {"sessions": session_pks})
        deleted = int(cursor.fetchone()[0])
        cursor.execute(_UNPARENT_SQL, {"sessions": session_pks})
        _delete_unnamed_blobs(cursor, session_pks)
    return deleted


# A DeltaChannel's value is rebuilt from the writes of older checkpoints back to its last snapshot, which
# keep_latest would remove: PostgresSaver refuses such threads, and so does this. A thread shows it as
# PostgresSaver sees it: update counters in a checkpoint's metadata (LangGraph.js marks its threads with
# `delta_writes_versioned`), or a snapshot among its values, which the client's serializer writes as msgpack
# extension 7 (langgraph.checkpoint.serde.jsonplus.EXT_DELTA_SNAPSHOT).
_DELTA_METADATA_KEYS = ("counters_since_delta_snapshot", "delta_writes_versioned")
_EXT_DELTA_SNAPSHOT = 7
# Where a msgpack extension's type byte is, after each extension format's first byte (fixext 1-16, ext 8-32).
_EXT_TYPE_OFFSET = {0xD4: 1, 0xD5: 1, 0xD6: 1, 0xD7: 1, 0xD8: 1, 0xC7: 2, 0xC8: 3, 0xC9: 5}


def _is_delta_snapshot(type_: str, blob: bytes | memoryview | None) -> bool:
    if type_ != "msgpack" or blob is None:
        return False
    try:
        data = open_bytes(blob)
    except (Erased, IntegrityFailure, ValueError, IndexError):
        return False  # unreadable: it tells nothing either way
    offset = _EXT_TYPE_OFFSET.get(data[0]) if data else None
    return offset is not None and len(data) > offset and data[offset] == _EXT_DELTA_SNAPSHOT


def _delta_channel_threads(session_pks: Sequence[object]) -> list[str]:
    """The thread ids among these sessions that use a DeltaChannel, sorted."""
    marked = Q()
    for key in _DELTA_METADATA_KEYS:
        marked |= Q(metadata__has_key=key)
    delta = set(ThreadCheckpoint.objects.filter(marked, session__in=session_pks).values_list("session_id", flat=True))
    # The rest's values are sealed, so each is opened to be looked at.
    blobs = ChannelBlob.objects.filter(session__in=[pk for pk in session_pks if pk not in delta], type="msgpack")
    for session_pk, type_, blob in blobs.values_list("session_id", "type", "blob").iterator(chunk_size=200):
        if session_pk not in delta and _is_delta_snapshot(type_, blob):
            delta.add(session_pk)
    return sorted(AgentSession.objects.filter(pk__in=delta).values_list("session_id", flat=True))


# keep_latest, as LangGraph's PostgresSaver prunes: each namespace keeps its newest checkpoint, except that a
# subgraph call's namespace (its task id follows a ":") goes entirely once the root checkpoint it started from
# is saved and is not the one kept (a `checkpointer=True` subgraph's namespace has no ":" and keeps its
# newest). The statement's subqueries all read the rows as they were before it deleted any. The writes that go
# are those of the checkpoints deleted (and all of a finished call's namespace), as in PostgresSaver: LangGraph
# saves a step's writes in the background, so those of a checkpoint still on its way stay for it.
_KEEP_LATEST_SQL = f"""
    WITH heads AS (
        SELECT DISTINCT ON (session_id, checkpoint_ns) session_id, checkpoint_ns, checkpoint_id,
            metadata -> 'parents' ->> '' AS root
        FROM {ThreadCheckpoint._meta.db_table}
        WHERE session_id = ANY(%(sessions)s)
        ORDER BY session_id, checkpoint_ns, checkpoint_id DESC
    ), calls AS (
        SELECT h.session_id, h.checkpoint_ns FROM heads h
        WHERE strpos(h.checkpoint_ns, ':') > 0
          AND EXISTS (
              SELECT 1 FROM {ThreadCheckpoint._meta.db_table} r
              WHERE r.session_id = h.session_id AND r.checkpoint_ns = '' AND r.checkpoint_id = h.root
          )
          AND NOT EXISTS (
              SELECT 1 FROM heads k
              WHERE k.session_id = h.session_id AND k.checkpoint_ns = '' AND k.checkpoint_id = h.root
          )
    ), deleted AS (
        DELETE FROM {ThreadCheckpoint._meta.db_table} c
        WHERE c.session_id = ANY(%(sessions)s) AND (
            EXISTS (SELECT 1 FROM calls WHERE calls.session_id = c.session_id AND calls.checkpoint_ns = c.checkpoint_ns)
            OR NOT EXISTS (
                SELECT 1 FROM heads h
                WHERE h.session_id = c.session_id AND h.checkpoint_ns = c.checkpoint_ns
                  AND h.checkpoint_id = c.checkpoint_id
            )
        )
        RETURNING c.session_id, c.checkpoint_ns, c.checkpoint_id
    ), deleted_writes AS (
        DELETE FROM {PendingWrite._meta.db_table} w
        WHERE w.session_id = ANY(%(sessions)s) AND (
            EXISTS (SELECT 1 FROM calls WHERE calls.session_id = w.session_id AND calls.checkpoint_ns = w.checkpoint_ns)
            OR EXISTS (
                SELECT 1 FROM deleted d
                WHERE d.session_id = w.session_id AND d.checkpoint_ns = w.checkpoint_ns
                  AND d.checkpoint_id = w.checkpoint_id
            )
        )
    )
    SELECT count(*) FROM deleted
"""  # noqa: S608 - table names only

# A kept checkpoint whose parent went has no parent (as in PostgresSaver): a reader must not follow a link
# to nothing.
_UNPARENT_SQL = f"""
    UPDATE {ThreadCheckpoint._meta.db_table} c SET parent_checkpoint_id = ''
    WHERE c.session_id = ANY(%(sessions)s) AND c.parent_checkpoint_id <> '' AND NOT EXISTS (
        SELECT 1 FROM {ThreadCheckpoint._meta.db_table} p
        WHERE p.session_id = c.session_id AND p.checkpoint_ns = c.checkpoint_ns
          AND p.checkpoint_id = c.parent_checkpoint_id
    )
"""  # noqa: S608 - table names only


# The tenant's checkpoints whose metadata's run_id is one of %(run_ids)s (JSON values), with their writes and no
# others (those of a checkpoint still on its way stay for it, as in _KEEP_LATEST_SQL); how many went, and the
# sessions they were of.
_DELETE_FOR_RUNS_SQL = f"""
    WITH deleted AS (
        DELETE FROM {ThreadCheckpoint._meta.db_table} c USING {AgentSession._meta.db_table} s
        WHERE s.id = c.session_id AND s.tenant_id = %(tenant)s AND c.metadata -> 'run_id' = ANY(%(run_ids)s::jsonb[])
        RETURNING c.session_id, c.checkpoint_ns, c.checkpoint_id
    ), deleted_writes AS (
        DELETE FROM {PendingWrite._meta.db_table} w USING deleted d
        WHERE w.session_id = d.session_id AND w.checkpoint_ns = d.checkpoint_ns AND w.checkpoint_id = d.checkpoint_id
    )
    SELECT count(*), array_agg(DISTINCT d.session_id) FROM deleted d
"""  # noqa: S608 - table names only


@transaction.atomic
def delete_for_runs(*, tenant: Tenant, run_ids: Sequence[str]) -> int:
    """Remove the tenant's checkpoints whose metadata names one of `run_ids`, with their writes and the blobs
    only they named (writes stored ahead of a checkpoint not yet saved stay; a racing save keeps its blobs, see
    services._KEEP_STORED_BLOB); returns how many checkpoints went."""
    if not run_ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            _DELETE_FOR_RUNS_SQL, {"tenant": tenant.pk, "run_ids": [json.dumps(run_id) for run_id in run_ids]}
        )
        count, session_pks = cursor.fetchone()
        if count:
            _delete_unnamed_blobs(cursor, session_pks)
    return int(count)


# --- checkpoint retention (lifecycle_app's job) -------------------------------------------------------------

# The thread's checkpoints that retention removes (as selectors.expired_thread_checkpoints counts them), at most
# %(limit)s of them, with their writes (those stored ahead of a checkpoint not yet saved stay, as in
# _KEEP_LATEST_SQL); nothing of an erased session. Returns one row: how many went, and the (namespace, channel,
# version) of every blob they named, the blobs that may now be named by no checkpoint.
_EXPIRE_SQL = f"""
    WITH ranked AS (
        SELECT c.id, c.created_at,
            row_number() OVER (PARTITION BY c.checkpoint_ns ORDER BY c.checkpoint_id DESC) AS newer
        FROM {ThreadCheckpoint._meta.db_table} c
        JOIN {AgentSession._meta.db_table} s ON s.id = c.session_id AND s.erased_at IS NULL
        WHERE c.session_id = %(session)s
    ), deleted AS (
        DELETE FROM {ThreadCheckpoint._meta.db_table} c
        WHERE c.id IN (SELECT id FROM ranked WHERE newer > %(keep)s AND created_at < %(cutoff)s LIMIT %(limit)s)
        RETURNING c.session_id, c.checkpoint_ns, c.checkpoint_id, c.checkpoint -> 'channel_versions' AS versions
    ), deleted_writes AS (
        DELETE FROM {PendingWrite._meta.db_table} w USING deleted d
        WHERE w.session_id = d.session_id AND w.checkpoint_ns = d.checkpoint_ns AND w.checkpoint_id = d.checkpoint_id
    ), named AS (
        SELECT DISTINCT d.checkpoint_ns AS ns, v.key AS channel, v.value AS version
        FROM deleted d
        CROSS JOIN LATERAL jsonb_each_text(CASE WHEN jsonb_typeof(d.versions) = 'object' THEN d.versions END) v
        WHERE v.value IS NOT NULL
    )
    SELECT (SELECT count(*) FROM deleted), array_agg(ns), array_agg(channel), array_agg(version) FROM named
"""  # noqa: S608 - table names only


@dataclass(frozen=True)
class RetentionStep:
    deleted: int = 0
    # Another retention worker holds the thread: it is revisited at the end.
    busy: bool = False
    # The step deadlocked with a writer of the thread on every attempt and was rolled back whole. Busy too, so
    # the job goes on with the other threads and revisits this one at the end (then the next run does).
    deadlocked: bool = False


def retention_step(
    *, session_pk: uuid.UUID, cutoff: datetime, keep_latest: int, limit: int, wait: bool
) -> RetentionStep | None:
    """Remove up to `limit` of the thread's checkpoints older than `cutoff` that are not among the newest
    `keep_latest` of their namespace (by checkpoint id, LangGraph's order), in one transaction: with their
    writes and the blobs only they named, and the parent link of a kept checkpoint whose parent went (as
    `prune_threads` leaves them). None when there is nothing (left) to remove; a busy step when another
    retention worker holds the thread and `wait` is False.

    A save racing the step keeps its blobs (see services._KEEP_STORED_BLOB). A checkpoint forked from one that
    went names values that went with it, as after a prune. A step the database still picks as a deadlock's
    victim (taking the values' locks is tried DEADLOCK_ATTEMPTS times) removes nothing and is a deadlocked step,
    logged as langgraph_retention_deadlocked, not an error: the job's other threads still get theirs.
    """
    try:
        return _retention_step(session_pk, cutoff, keep_latest, limit, wait=wait)
    except OperationalError as exc:
        if not _deadlocked(exc):
            raise
        logger.warning("langgraph_retention_deadlocked", session=str(session_pk))
        return RetentionStep(busy=True, deadlocked=True)


def _retention_step(
    session_pk: uuid.UUID, cutoff: datetime, keep_latest: int, limit: int, *, wait: bool
) -> RetentionStep | None:
    key = [f"langgraph-retention:{session_pk}"]
    with transaction.atomic(), connection.cursor() as cursor:
        # Two workers never take the same thread at once: their counts add up, and neither waits on the other.
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", key)
        else:
            cursor.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", key)
            if not cursor.fetchone()[0]:
                return RetentionStep(busy=True)
        params: dict[str, Any] = {"session": session_pk, "cutoff": cutoff, "keep": keep_latest, "limit": limit}
        cursor.execute(_EXPIRE_SQL, params)
        deleted, namespaces, channels, versions = cursor.fetchone()
        if not deleted:
            return None
        cursor.execute(_UNPARENT_SQL, {"sessions": [session_pk]})
        if namespaces:
            _delete_unnamed_blobs(cursor, [session_pk], named=(namespaces, channels, versions))
    return RetentionStep(deleted=int(deleted))


def uses_delta_channel(session_pk: uuid.UUID) -> bool:
    """Whether the thread uses a DeltaChannel, whose values are rebuilt from older checkpoints' writes: retention
    keeps such a thread whole, as keep_latest refuses it."""
    return bool(_delta_channel_threads([session_pk]))
