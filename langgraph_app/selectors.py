"""Reads of LangGraph's model, always within the caller's tenant: checkpoint tuples with their channel values
and pending writes, as LangGraph's `get_tuple` and `list` need them."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection
from django.db.models import F, Q

from langgraph_app.models import ChannelBlob, PendingWrite, ThreadCheckpoint
from langgraph_app.services import check_thread_id
from memory_admin.errors import NotFound
from memory_admin.sql import run
from sessions_app.models import AgentSession
from tenants_app.models import Tenant

MAX_LIMIT = 100


@dataclass
class TupleView:
    """A checkpoint with the blobs of the channel versions it names and the writes made on top of it."""

    row: ThreadCheckpoint
    thread_id: str
    blobs: list[ChannelBlob] = field(default_factory=list)
    writes: list[PendingWrite] = field(default_factory=list)


def version_key(version: Any) -> str:
    """How a channel version (an int, float or string in LangGraph) is stored: its text, as Python writes it
    and as PostgreSQL's ->> reads it from the checkpoint's JSON."""
    return version if isinstance(version, str) else str(version)


def _blobs_for(rows: list[ThreadCheckpoint]) -> dict[tuple[object, str, str, str], ChannelBlob]:
    keys = {
        (row.session_id, row.checkpoint_ns, channel, version_key(version))
        for row in rows
        for channel, version in (row.checkpoint.get("channel_versions") or {}).items()
    }
    if not keys:
        return {}
    sessions, namespaces, channels, versions = (list(column) for column in zip(*keys, strict=True))
    table = ChannelBlob._meta.db_table
    blobs = ChannelBlob.objects.raw(
        f"SELECT b.* FROM {table} b JOIN unnest(%s::uuid[], %s::text[], %s::text[], %s::text[]) "  # noqa: S608
        "AS k(session_id, ns, channel, version) ON b.session_id = k.session_id AND b.checkpoint_ns = k.ns "
        "AND b.channel = k.channel AND b.version = k.version",
        [sessions, namespaces, channels, versions],
    )
    return {(blob.session_id, blob.checkpoint_ns, blob.channel, blob.version): blob for blob in blobs}


def _writes_for(rows: list[ThreadCheckpoint]) -> dict[tuple[object, str, str], list[PendingWrite]]:
    if not rows:
        return {}
    table = PendingWrite._meta.db_table
    writes = PendingWrite.objects.raw(
        f"SELECT w.* FROM {table} w JOIN unnest(%s::uuid[], %s::text[], %s::text[]) "  # noqa: S608
        "AS k(session_id, ns, id) ON w.session_id = k.session_id AND w.checkpoint_ns = k.ns "
        "AND w.checkpoint_id = k.id ORDER BY w.task_path, w.task_id, w.idx",
        [[row.session_id for row in rows], [row.checkpoint_ns for row in rows], [row.checkpoint_id for row in rows]],
    )
    grouped: dict[tuple[object, str, str], list[PendingWrite]] = defaultdict(list)
    for write in writes:
        grouped[(write.session_id, write.checkpoint_ns, write.checkpoint_id)].append(write)
    return grouped


def _views(rows: list[ThreadCheckpoint], thread_ids: dict[object, str]) -> list[TupleView]:
    """Each checkpoint with the blobs of the channel versions it names and its pending writes (two queries)."""
    blobs = _blobs_for(rows)
    writes = _writes_for(rows)
    views = []
    for row in rows:
        named = [
            blobs[key]
            for channel, version in (row.checkpoint.get("channel_versions") or {}).items()
            if (key := (row.session_id, row.checkpoint_ns, channel, version_key(version))) in blobs
        ]
        views.append(
            TupleView(
                row=row,
                thread_id=thread_ids[row.session_id],
                blobs=named,
                writes=writes.get((row.session_id, row.checkpoint_ns, row.checkpoint_id), []),
            )
        )
    return views


# A page of one thread's tuples in one statement: the tenant's (visible) session of the thread, then its
# checkpoints newest first, each with the blobs of the channel versions it names (in the order of its
# channel_versions, as a read of the row gives them) and the pending writes made on top of it, as arrays.
# No row: no such thread; one row without a checkpoint id: a thread without checkpoints (in this page).
# {conditions} is a fixed choice of the filters below. Each named blob is looked up by its key (LIMIT 1 keeps
# the lookup a probe of the unique index, not a scan of the thread's every blob).
_TUPLES_SQL = f"""
SELECT s.id, c.id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.checkpoint::text, c.metadata::text,
    c.created_at, b.channels, b.versions, b.types, b.blobs,
    w.task_ids, w.task_paths, w.idxs, w.channels, w.types, w.blobs
FROM {AgentSession._meta.db_table} s
LEFT JOIN LATERAL (
    SELECT * FROM {ThreadCheckpoint._meta.db_table}
    WHERE session_id = s.id{{conditions}}
    ORDER BY checkpoint_id DESC, checkpoint_ns
    LIMIT %(limit)s
) c ON true
LEFT JOIN LATERAL (
    SELECT array_agg(blob.channel ORDER BY named.n) AS channels, array_agg(blob.version ORDER BY named.n) AS versions,
        array_agg(blob.type ORDER BY named.n) AS types, array_agg(blob.blob ORDER BY named.n) AS blobs
    FROM jsonb_each_text(
        CASE WHEN jsonb_typeof(c.checkpoint -> 'channel_versions') = 'object'
            THEN c.checkpoint -> 'channel_versions' END
    ) WITH ORDINALITY AS named(channel, version, n)
    CROSS JOIN LATERAL (
        SELECT channel, version, type, blob FROM {ChannelBlob._meta.db_table}
        WHERE session_id = c.session_id AND checkpoint_ns = c.checkpoint_ns
            AND channel = named.channel AND version = named.version
        LIMIT 1
    ) blob
) b ON true
LEFT JOIN LATERAL (
    SELECT array_agg(pw.task_id ORDER BY pw.task_path, pw.task_id, pw.idx) AS task_ids,
        array_agg(pw.task_path ORDER BY pw.task_path, pw.task_id, pw.idx) AS task_paths,
        array_agg(pw.idx ORDER BY pw.task_path, pw.task_id, pw.idx) AS idxs,
        array_agg(pw.channel ORDER BY pw.task_path, pw.task_id, pw.idx) AS channels,
        array_agg(pw.type ORDER BY pw.task_path, pw.task_id, pw.idx) AS types,
        array_agg(pw.blob ORDER BY pw.task_path, pw.task_id, pw.idx) AS blobs
    FROM {PendingWrite._meta.db_table} pw
    WHERE pw.session_id = c.session_id AND pw.checkpoint_ns = c.checkpoint_ns AND pw.checkpoint_id = c.checkpoint_id
) w ON true
WHERE s.tenant_id = %(tenant)s AND s.session_id = %(thread)s AND s.erased_at IS NULL
ORDER BY c.checkpoint_id DESC, c.checkpoint_ns
"""  # noqa: S608 - table names come from the models; every value is bound
_TUPLE_FILTERS = {
    "checkpoint_ns": " AND checkpoint_ns = %(checkpoint_ns)s",
    "checkpoint_id": " AND checkpoint_id = %(checkpoint_id)s",
    "before": " AND checkpoint_id < %(before)s",
    "metadata": " AND metadata @> %(metadata)s::jsonb",
}


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what orjson does not read (an integer beyond 64 bits): the json module
        return json.loads(text)


def _tuple_view(row: tuple[Any, ...], thread_id: str) -> TupleView:
    (session_id, pk, checkpoint_ns, checkpoint_id, parent_id, checkpoint, metadata, created_at, *arrays) = row
    channels, versions, types, blobs, task_ids, task_paths, idxs, write_channels, write_types, write_blobs = arrays
    return TupleView(
        row=ThreadCheckpoint(
            id=pk,
            session_id=session_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            parent_checkpoint_id=parent_id,
            checkpoint=_json(checkpoint),
            metadata=_json(metadata),
            created_at=created_at,
        ),
        thread_id=thread_id,
        blobs=[
            ChannelBlob(session_id=session_id, checkpoint_ns=checkpoint_ns, channel=c, version=v, type=t, blob=b)
            for c, v, t, b in zip(channels or (), versions or (), types or (), blobs or (), strict=True)
        ],
        writes=[
            PendingWrite(
                session_id=session_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=checkpoint_id,
                task_id=task_id,
                task_path=task_path,
                idx=idx,
                channel=channel,
                type=kind,
                blob=blob,
            )
            for task_id, task_path, idx, channel, kind, blob in zip(
                task_ids or (),
                task_paths or (),
                idxs or (),
                write_channels or (),
                write_types or (),
                write_blobs or (),
                strict=True,
            )
        ],
    )


def list_tuples(
    *,
    tenant: Tenant,
    thread_id: str,
    checkpoint_ns: str | None = None,
    checkpoint_id: str | None = None,
    before: str | None = None,
    metadata_filter: dict[str, Any] | None = None,
    limit: int = MAX_LIMIT,
) -> list[TupleView]:
    """The thread's checkpoints newest first (by checkpoint id), in one namespace or all, each with its
    channel values and pending writes: exactly `checkpoint_id` when given, those before `before`, those
    whose metadata contains `metadata_filter`. NotFound (404) for a thread the tenant does not have.
    One prepared statement: this is the read every `graph.invoke` on a thread starts with."""
    check_thread_id(thread_id)
    params: dict[str, Any] = {
        "tenant": tenant.pk,
        "thread": thread_id,
        "limit": limit,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "before": before,
        "metadata": json.dumps(metadata_filter) if metadata_filter else None,
    }
    conditions = "".join(sql for name, sql in _TUPLE_FILTERS.items() if params[name] is not None)
    rows = run(_TUPLES_SQL.format(conditions=conditions), params)
    if not rows:
        raise NotFound("No such thread.", details={"thread_id": thread_id})
    return [_tuple_view(row, thread_id) for row in rows if row[1] is not None]


@dataclass(frozen=True)
class Position:
    """Where a tenant-wide listing stopped: the last checkpoint returned, in the listing's order."""

    checkpoint_id: str
    thread_id: str
    checkpoint_ns: str


def list_tenant_tuples(
    *,
    tenant: Tenant,
    before: str | None = None,
    after: Position | None = None,
    metadata_filter: dict[str, Any] | None = None,
    limit: int = MAX_LIMIT,
) -> list[TupleView]:
    """Every checkpoint of the tenant's threads (LangGraph's `list(None, ...)`), newest checkpoint id first,
    then by thread id and namespace: those with an id below `before`, those whose metadata contains
    `metadata_filter`, continuing after `after` (the previous page's last row). Erased sessions hold none."""
    rows_query = ThreadCheckpoint.objects.filter(session__tenant=tenant, session__erased_at__isnull=True)
    if before is not None:
        rows_query = rows_query.filter(checkpoint_id__lt=before)
    if metadata_filter:
        rows_query = rows_query.filter(metadata__contains=metadata_filter)
    if after is not None:
        # Rows strictly after the last one of the previous page in (checkpoint_id desc, thread, namespace).
        rows_query = rows_query.filter(
            Q(checkpoint_id__lt=after.checkpoint_id)
            | Q(checkpoint_id=after.checkpoint_id, session__session_id__gt=after.thread_id)
            | Q(
                checkpoint_id=after.checkpoint_id,
                session__session_id=after.thread_id,
                checkpoint_ns__gt=after.checkpoint_ns,
            )
        )
    rows: list[ThreadCheckpoint] = list(
        rows_query.annotate(thread_id=F("session__session_id")).order_by(
            "-checkpoint_id", "session__session_id", "checkpoint_ns"
        )[:limit]
    )
    return _views(rows, {row.session_id: row.thread_id for row in rows})  # type: ignore[attr-defined]


def stored_bytes(*, session_pks: list[object]) -> int:
    """Bytes the LangGraph rows of these sessions take in their tables (row data as stored, TOAST included)."""
    total = 0
    with connection.cursor() as cursor:
        for model in (ThreadCheckpoint, ChannelBlob, PendingWrite):
            cursor.execute(
                f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {model._meta.db_table} t "  # noqa: S608
                "WHERE session_id = ANY(%s)",
                [session_pks],
            )
            total += int(cursor.fetchone()[0])
    return total
