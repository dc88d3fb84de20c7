"""Reads of LangGraph's model, always within the caller's tenant: checkpoint tuples with their channel values
and pending writes, as LangGraph's `get_tuple` and `list` need them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import F, Q

from langgraph_app.models import ChannelBlob, PendingWrite, ThreadCheckpoint
from langgraph_app.services import thread_session
from memory_admin.errors import NotFound
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


def checkpoints_of(session: AgentSession, *, checkpoint_ns: str | None = None) -> Any:
    rows = ThreadCheckpoint.objects.filter(session=session)
    if checkpoint_ns is not None:
        rows = rows.filter(checkpoint_ns=checkpoint_ns)
    return rows


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
    whose metadata contains `metadata_filter`. NotFound (404) for a thread the tenant does not have."""
    session = thread_session(tenant=tenant, thread_id=thread_id)
    if session is None:
        raise NotFound("No such thread.", details={"thread_id": thread_id})
    rows_query = checkpoints_of(session, checkpoint_ns=checkpoint_ns)
    if checkpoint_id is not None:
        rows_query = rows_query.filter(checkpoint_id=checkpoint_id)
    if before is not None:
        rows_query = rows_query.filter(checkpoint_id__lt=before)
    if metadata_filter:
        rows_query = rows_query.filter(metadata__contains=metadata_filter)
    rows = list(rows_query.order_by("-checkpoint_id", "checkpoint_ns")[:limit])
    return _views(rows, {session.pk: thread_id})


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
