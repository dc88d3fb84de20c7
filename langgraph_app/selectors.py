"""Reads of LangGraph's model, always within the caller's tenant: checkpoint tuples with their channel values
and pending writes, as LangGraph's `get_tuple` and `list` need them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from langgraph_app.models import ChannelBlob, PendingWrite, StoreItem, ThreadCheckpoint
from langgraph_app.services import check_thread_id
from memory_admin.codec import loads
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


# Pending writes in LangGraph's writes_sort_key order, (task_path, task_id, idx) as Python compares them: code
# point by code point, which is the "C" collation. The database's own (en_US.UTF-8 in the pgvector image) puts
# "alpha" before "Beta", so a DeltaChannel rebuilt from a step's writes would differ from what the run computed.
_WRITES_ORDER = 'pw.task_path COLLATE "C", pw.task_id COLLATE "C", pw.idx'

# Each checkpoint row `c` with the blobs of the channel versions it names (in the order of its
# channel_versions, as a read of the row gives them) and the pending writes made on top of it, as arrays. Each
# named blob is looked up by its key (LIMIT 1 keeps the lookup a probe of the unique index, not a scan of the
# thread's every blob).
_TUPLE_COLUMNS = """c.id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.checkpoint::text,
    c.metadata::text, c.created_at, b.channels, b.versions, b.types, b.blobs,
    w.task_ids, w.task_paths, w.idxs, w.channels, w.types, w.blobs"""
_ATTACHED = f"""
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
    SELECT array_agg(pw.task_id ORDER BY {_WRITES_ORDER}) AS task_ids,
        array_agg(pw.task_path ORDER BY {_WRITES_ORDER}) AS task_paths,
        array_agg(pw.idx ORDER BY {_WRITES_ORDER}) AS idxs,
        array_agg(pw.channel ORDER BY {_WRITES_ORDER}) AS channels,
        array_agg(pw.type ORDER BY {_WRITES_ORDER}) AS types,
        array_agg(pw.blob ORDER BY {_WRITES_ORDER}) AS blobs
    FROM {PendingWrite._meta.db_table} pw
    WHERE pw.session_id = c.session_id AND pw.checkpoint_ns = c.checkpoint_ns AND pw.checkpoint_id = c.checkpoint_id
) w ON true"""  # noqa: S608 - table names come from the models

# A page of one thread's tuples in one statement: the tenant's (visible) session of the thread, then its
# checkpoints newest first. No row: no such thread; one row without a checkpoint id: a thread without
# checkpoints (in this page). {conditions} is a fixed choice of _TUPLE_FILTERS. Checkpoint ids are ordered in
# the database's collation, as PostgresSaver orders them and as the unique index holds them: LangGraph's ids
# (uuid6: lowercase hex, dashes at fixed places) sort alike in every collation.
_TUPLES_SQL = f"""
SELECT s.id, s.session_id, {_TUPLE_COLUMNS}
FROM {AgentSession._meta.db_table} s
LEFT JOIN LATERAL (
    SELECT * FROM {ThreadCheckpoint._meta.db_table}
    WHERE session_id = s.id{{conditions}}
    ORDER BY checkpoint_id DESC, checkpoint_ns
    LIMIT {{limit}}
) c ON true{_ATTACHED}
WHERE s.tenant_id = %(tenant)s AND s.session_id = %(thread)s AND s.erased_at IS NULL
ORDER BY c.checkpoint_id DESC, c.checkpoint_ns
"""  # noqa: S608 - table names come from the models; every value is bound
_TUPLE_FILTERS = {
    "checkpoint_ns": " AND checkpoint_ns = %(checkpoint_ns)s",
    "checkpoint_id": " AND checkpoint_id = %(checkpoint_id)s",
    "before": " AND checkpoint_id < %(before)s",
    "metadata": " AND metadata @> %(metadata)s::jsonb",
    # Strictly after the previous page's last row in (checkpoint id desc, namespace): a page may end between
    # two namespaces' checkpoints of the same id, where `before` alone would skip the rest of them.
    "after_id": " AND (checkpoint_id < %(after_id)s"
    " OR (checkpoint_id = %(after_id)s AND checkpoint_ns > %(after_ns)s))",
}


def _tuple_view(row: tuple[Any, ...]) -> TupleView:
    """A row of _TUPLE_COLUMNS after the session's id and the thread id."""
    (session_id, thread_id, pk, checkpoint_ns, checkpoint_id, parent_id, checkpoint, metadata, created_at, *arrays) = (
        row
    )
    channels, versions, types, blobs, task_ids, task_paths, idxs, write_channels, write_types, write_blobs = arrays
    return TupleView(
        row=ThreadCheckpoint(
            id=pk,
            session_id=session_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            parent_checkpoint_id=parent_id,
            checkpoint=loads(checkpoint),
            metadata=loads(metadata),
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


def _limit_sql(limit: int) -> str:
    """The LIMIT of a page: written into the statement for get_tuple's page of one, a parameter otherwise. With
    a parameter PostgreSQL's generic plan of the prepared statement looks costlier than a plan for the value,
    so it planned the statement again on every call: half of get_tuple's statement time (0.61 -> 0.28-0.33 ms,
    measured in-process on a 21-checkpoint thread). Longer pages are planned per call either way."""
    return "1" if type(limit) is int and limit == 1 else "%(limit)s"


@dataclass(frozen=True)
class Position:
    """Where a listing stopped: the last checkpoint returned, in the listing's order."""

    checkpoint_id: str
    thread_id: str
    checkpoint_ns: str


def list_tuples(
    *,
    tenant: Tenant,
    thread_id: str,
    checkpoint_ns: str | None = None,
    checkpoint_id: str | None = None,
    before: str | None = None,
    metadata_filter: dict[str, Any] | None = None,
    after: Position | None = None,
    limit: int = MAX_LIMIT,
) -> list[TupleView]:
    """The thread's checkpoints newest first (by checkpoint id, then namespace), in one namespace or all, each
    with its channel values and pending writes: exactly `checkpoint_id` when given, those before `before`,
    those whose metadata contains `metadata_filter`, continuing after `after` (the previous page's last row;
    its thread id is not read). NotFound (404) for a thread the tenant does not have.
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
        "after_id": after.checkpoint_id if after is not None else None,
        "after_ns": after.checkpoint_ns if after is not None else None,
    }
    conditions = "".join(sql for name, sql in _TUPLE_FILTERS.items() if params[name] is not None)
    rows = run(_TUPLES_SQL.format(conditions=conditions, limit=_limit_sql(limit)), params)
    if not rows:
        raise NotFound("No such thread.", details={"thread_id": thread_id})
    return [_tuple_view(row) for row in rows if row[2] is not None]


# Every checkpoint of a tenant's visible threads, newest checkpoint id first, then by thread id and namespace.
_TENANT_TUPLES_SQL = f"""
SELECT c.session_id, c.thread_id, {_TUPLE_COLUMNS}
FROM (
    SELECT t.*, s.session_id AS thread_id
    FROM {ThreadCheckpoint._meta.db_table} t JOIN {AgentSession._meta.db_table} s ON s.id = t.session_id
    WHERE s.tenant_id = %(tenant)s AND s.erased_at IS NULL{{conditions}}
    ORDER BY t.checkpoint_id DESC, s.session_id, t.checkpoint_ns
    LIMIT %(limit)s
) c{_ATTACHED}
ORDER BY c.checkpoint_id DESC, c.thread_id, c.checkpoint_ns
"""  # noqa: S608 - table names come from the models; every value is bound
_TENANT_TUPLE_FILTERS = {
    "before": " AND t.checkpoint_id < %(before)s",
    "metadata": " AND t.metadata @> %(metadata)s::jsonb",
    # Strictly after the previous page's last row in (checkpoint id desc, thread, namespace).
    "after_id": " AND (t.checkpoint_id < %(after_id)s OR (t.checkpoint_id = %(after_id)s"
    " AND (s.session_id > %(after_thread)s OR (s.session_id = %(after_thread)s AND t.checkpoint_ns > %(after_ns)s))))",
}


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
    params: dict[str, Any] = {
        "tenant": tenant.pk,
        "limit": limit,
        "before": before,
        "metadata": json.dumps(metadata_filter) if metadata_filter else None,
        "after_id": after.checkpoint_id if after is not None else None,
        "after_thread": after.thread_id if after is not None else None,
        "after_ns": after.checkpoint_ns if after is not None else None,
    }
    conditions = "".join(sql for name, sql in _TENANT_TUPLE_FILTERS.items() if params[name] is not None)
    return [_tuple_view(row) for row in run(_TENANT_TUPLES_SQL.format(conditions=conditions), params)]


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


# Per thread (a visible session of these tenants), how many of its checkpoints checkpoint retention removes:
# older than the cutoff and not among the newest %(keep)s of their namespace by checkpoint id (LangGraph's order,
# as _TUPLES_SQL reads them). retention.retention_step removes the same rows.
_EXPIRED_SQL = f"""
    SELECT c.session_id, count(*) FROM (
        SELECT t.session_id, t.created_at,
            row_number() OVER (PARTITION BY t.session_id, t.checkpoint_ns ORDER BY t.checkpoint_id DESC) AS newer
        FROM {ThreadCheckpoint._meta.db_table} t
        JOIN {AgentSession._meta.db_table} s ON s.id = t.session_id
        WHERE s.tenant_id = ANY(%(tenants)s) AND s.erased_at IS NULL
    ) c
    WHERE c.newer > %(keep)s AND c.created_at < %(cutoff)s
    GROUP BY c.session_id
    ORDER BY c.session_id
"""  # noqa: S608 - table names only


def expired_thread_checkpoints(
    *, tenant_ids: Sequence[uuid.UUID], cutoff: datetime, keep_latest: int
) -> dict[uuid.UUID, int]:
    """Session id -> how many checkpoints of that thread are older than `cutoff` and not among the newest
    `keep_latest` of their namespace, for the threads of these tenants that have any (ordered by session id)."""
    params: dict[str, Any] = {"tenants": list(tenant_ids), "cutoff": cutoff, "keep": keep_latest}
    with connection.cursor() as cursor:
        cursor.execute(_EXPIRED_SQL, params)
        return {session_pk: int(count) for session_pk, count in cursor.fetchall()}


def namespace_owner(prefix: str, namespaces: Sequence[str]) -> str | None:
    """Whose items the namespace `prefix` holds under the templates `namespaces` (labels joined by "." with
    {user_id} for the person, as in settings.ERASURE_STORE_NAMESPACES): the label at {user_id} of the most
    specific template the namespace is at or below (most fixed labels; among equals, the first listed).
    So with the defaults ("users", "alice", "prefs") is alice's, not the items of a person called "users"."""
    labels = prefix.split(".")
    best: tuple[int, str] | None = None
    for template in namespaces:
        pattern = template.split(".")
        if len(labels) < len(pattern):
            continue
        if all(want in ("{user_id}", have) for want, have in zip(pattern, labels, strict=False)):
            fixed = len(pattern) - 1
            if best is None or fixed > best[0]:
                best = (fixed, labels[pattern.index("{user_id}")])
    return best[1] if best is not None else None


def store_namespaces_of(*, tenant: Tenant, user_id: str, namespaces: Sequence[str]) -> list[str]:
    """The namespaces (as stored: labels joined by ".") of the tenant's store that hold the person's items, in
    label order: each template's namespace for them and those below it, unless a more specific template gives
    one to someone else (see namespace_owner). A label holds no ".", so an id with one names no namespace."""
    if not user_id or "." in user_id or not namespaces:
        return []
    candidates = Q()
    for template in namespaces:
        prefix = ".".join(user_id if label == "{user_id}" else label for label in template.split("."))
        candidates |= Q(prefix=prefix) | Q(prefix__startswith=f"{prefix}.")
    found = StoreItem.objects.filter(tenant=tenant).filter(candidates).values_list("prefix", flat=True).distinct()
    owned = [prefix for prefix in found if namespace_owner(prefix, namespaces) == user_id]
    return sorted(owned, key=lambda prefix: prefix.split("."))


def store_items_of(*, tenant: Tenant, user_id: str, namespaces: Sequence[str]) -> QuerySet[StoreItem]:
    """The tenant's store items (expired or not) in the person's namespaces (store_namespaces_of)."""
    owned = store_namespaces_of(tenant=tenant, user_id=user_id, namespaces=namespaces)
    return StoreItem.objects.filter(tenant=tenant, prefix__in=owned)
