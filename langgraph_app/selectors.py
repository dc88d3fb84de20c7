"""Reads of LangGraph's model, always within the caller's tenant: checkpoint tuples with their channel values
and pending writes, as LangGraph's `get_tuple` and `list` need them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

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


def _blobs_for(session: AgentSession, rows: list[ThreadCheckpoint]) -> dict[tuple[str, str, str], ChannelBlob]:
    keys = {
        (row.checkpoint_ns, channel, version_key(version))
        for row in rows
        for channel, version in (row.checkpoint.get("channel_versions") or {}).items()
    }
    if not keys:
        return {}
    namespaces, channels, versions = (list(column) for column in zip(*keys, strict=True))
    table = ChannelBlob._meta.db_table
    blobs = ChannelBlob.objects.raw(
        f"SELECT b.* FROM {table} b JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(ns, channel, version) "  # noqa: S608
        "ON b.checkpoint_ns = k.ns AND b.channel = k.channel AND b.version = k.version WHERE b.session_id = %s",
        [namespaces, channels, versions, session.pk],
    )
    return {(blob.checkpoint_ns, blob.channel, blob.version): blob for blob in blobs}


def _writes_for(session: AgentSession, rows: list[ThreadCheckpoint]) -> dict[tuple[str, str], list[PendingWrite]]:
    if not rows:
        return {}
    table = PendingWrite._meta.db_table
    writes = PendingWrite.objects.raw(
        f"SELECT w.* FROM {table} w JOIN unnest(%s::text[], %s::text[]) AS k(ns, id) "  # noqa: S608
        "ON w.checkpoint_ns = k.ns AND w.checkpoint_id = k.id WHERE w.session_id = %s "
        "ORDER BY w.task_path, w.task_id, w.idx",
        [[row.checkpoint_ns for row in rows], [row.checkpoint_id for row in rows], session.pk],
    )
    grouped: dict[tuple[str, str], list[PendingWrite]] = defaultdict(list)
    for write in writes:
        grouped[(write.checkpoint_ns, write.checkpoint_id)].append(write)
    return grouped


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
    blobs = _blobs_for(session, rows)
    writes = _writes_for(session, rows)
    views = []
    for row in rows:
        named = [
            blobs[key]
            for channel, version in (row.checkpoint.get("channel_versions") or {}).items()
            if (key := (row.checkpoint_ns, channel, version_key(version))) in blobs
        ]
        views.append(
            TupleView(
                row=row, thread_id=thread_id, blobs=named, writes=writes.get((row.checkpoint_ns, row.checkpoint_id), [])
            )
        )
    return views


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
