"""The export archive: everything held about one person, one JSON file per layer, with a manifest.

The scope is erasure's (compliance_app.scope), restricted to what the person still has: sessions and memories
erased or deleted logically (or hidden by an approved erasure) are not theirs to receive any more. While an
approved erasure of the person is being carried out, the build fails, saying so: all it could find is what the
purge is about to remove, and the erasure's verification withdraws the person's exports anyway; filed once the
erasure is verified, the export says what is held about them then. Payloads are decoded through the codec, so
the archive holds readable JSON, never ciphertext. Each layer is written as a JSON array, row by row, into the
zip, so a person with a million events never sits in memory as Python objects at once.

    manifest.json        format, request id, tenant, subject hash, generated_at, and per file: rows, bytes, sha256
    sessions.json        the person's sessions (status, metadata, timestamps)
    events.json          every event decoded, archived ones included (marked "archived": true)
    operations.json      the operation journal (params, result, error decoded)
    checkpoints.json     every checkpoint with its full state rebuilt from the stored snapshots and deltas
    langgraph.json       the LangGraph checkpoints of the person's threads: channel values and pending writes decoded
                         ("kind": "checkpoint"); then writes whose checkpoint is not stored ("pending_write") and
                         channel values no checkpoint names ("channel_value"), decoded too
    langgraph_store.json the LangGraph store items in the person's namespaces (settings.ERASURE_STORE_NAMESPACES)
    memories.json        user, session and derived memories (text and metadata; vectors are described, not copied)
    memory_history.json  every revision of those memories
    profile.json         the profile and its pending outbox facts
    redis.json           hot data in Redis: dialogue windows, tool state, idempotency records about the person
    audit.json           the audit log entries about the person
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
import zipfile
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, TypeVar

from django.db import connection
from django.db.models import Model, QuerySet

from checkpoints_app.chain import next_state, owner_of, stored_checkpoints
from compliance_app import scope
from compliance_app.models import AuditEntry, ExportRequest
from compliance_app.selectors import erasure_under_way
from langgraph_app.display import readable_checkpoint, readable_value
from langgraph_app.models import ChannelBlob, PendingWrite, ThreadCheckpoint
from lifecycle_app.archive import ArchiveDocument
from lifecycle_app.models import ArchiveKind, ArchiveSegment
from lifecycle_app.selectors import read_archive
from memories_app.models import Memory, MemoryRevision, ProfileFactOutbox, UserProfile
from memory_admin.codec import decode_payload
from memory_admin.errors import Erased, NotFound
from memory_admin.health import redis_client
from sessions_app.context import session_keys_pattern
from sessions_app.models import AgentSession, Event, Operation

FORMAT = "agent-memory-export/1"
LAYERS = (
    "sessions",
    "events",
    "operations",
    "checkpoints",
    "langgraph",
    "langgraph_store",
    "memories",
    "memory_history",
    "profile",
    "redis",
    "audit",
)
_CHUNK = 2000


# A session's LangGraph rows that none of the checkpoints listed for the export covers (the parameters: the
# session's row id, then the listed keys as one array per column), in the order they are exported.
_WRITES_WITHOUT_CHECKPOINT_SQL = f"""
    SELECT w.id FROM {PendingWrite._meta.db_table} w
    WHERE w.session_id = %s AND NOT EXISTS (
        SELECT 1 FROM unnest(%s::text[], %s::text[]) AS listed(ns, checkpoint_id)
        WHERE listed.ns = w.checkpoint_ns AND listed.checkpoint_id = w.checkpoint_id
    )
    ORDER BY w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx
"""  # noqa: S608 - table name only
# An "empty" value marks a channel without one: nothing to export, as a checkpoint's values leave it out.
_VALUES_WITHOUT_CHECKPOINT_SQL = f"""
    SELECT b.id FROM {ChannelBlob._meta.db_table} b
    WHERE b.session_id = %s AND b.type <> 'empty' AND NOT EXISTS (
        SELECT 1 FROM unnest(%s::text[], %s::text[], %s::text[]) AS listed(ns, channel, version)
        WHERE listed.ns = b.checkpoint_ns AND listed.channel = b.channel AND listed.version = b.version
    )
    ORDER BY b.checkpoint_ns, b.channel, b.version
"""  # noqa: S608 - table name only

_Row = TypeVar("_Row", bound=Model)


def _columns(keys: Collection[tuple[str, ...]], width: int) -> list[list[str]]:
    """Keys of `width` parts as one list per part, for unnest()."""
    ordered = list(keys)
    return [[key[part] for key in ordered] for part in range(width)]


def _rows_by_id(model: type[_Row], ids_sql: str, params: list[Any]) -> Iterator[_Row]:
    """The rows whose ids `ids_sql` selects, in its order, _CHUNK at a time (their values may be large); one
    deleted meanwhile is left out."""
    with connection.cursor() as cursor:
        cursor.execute(ids_sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found = model._base_manager.in_bulk(chunk)
        yield from (found[pk] for pk in chunk if pk in found)


class ExportTooLarge(Exception):
    pass


class ArchiveMoved(Exception):
    """An archive segment was restored or removed while the export read it: the next attempt reads the rows
    where they are now."""


def _archived(segment: ArchiveSegment) -> ArchiveDocument:
    """The rows of an archive segment. NotFound when its object is missing from storage: that stays so, and
    the export cannot be complete without it."""
    try:
        return read_archive(segment)
    except NotFound:
        if not ArchiveSegment.objects.filter(pk=segment.pk).exists():
            raise ArchiveMoved(str(segment.pk)) from None
        raise NotFound(
            "Part of the person's archived session history is missing from archive storage; the export cannot be "
            "complete without it.",
            details={"segment": str(segment.pk)},
        ) from None


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class FileEntry:
    name: str
    rows: int = 0
    bytes: int = 0
    sha256: str = ""


# Rows of a layer between two progress reports (each renews the build's lease), besides the one after each file.
ROWS_PER_REPORT = 5_000


@dataclass
class Builder:
    """Writes the archive for one export request; `on_layer(layer, rows)` reports progress after each file, and
    every ROWS_PER_REPORT rows within one."""

    export: ExportRequest
    on_layer: Callable[[str, int], None] = lambda layer, rows: None
    max_bytes: int = 0
    files: list[FileEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.person = scope.Person(tenant=self.export.tenant, user_id=self.export.user_id)
        self.sessions = list(self.person.sessions().filter(erased_at__isnull=True).order_by("created_at", "id"))
        self.written = 0

    def build(self, out: IO[bytes], *, generated_at: datetime) -> dict[str, Any]:
        """Write the zip to `out`; returns the manifest (also stored in the zip as manifest.json)."""
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for layer in LAYERS:
                rows = getattr(self, f"_{layer}")()
                self.files.append(self._write_array(archive, f"{layer}.json", rows))
                self.on_layer(layer, self.files[-1].rows)
            manifest = {
                "format": FORMAT,
                "request": str(self.export.pk),
                "tenant": self.export.tenant.name,
                "subject": self.export.subject,
                "user_id": self.export.user_id,
                "legal_basis": self.export.legal_basis,
                "generated_at": generated_at.isoformat(),
                "files": [entry.__dict__ for entry in self.files],
                "counts": {entry.name.removesuffix(".json"): entry.rows for entry in self.files},
                "notes": [
                    "Payloads are decoded: the archive holds the JSON the agent stored, not ciphertext.",
                    "Memory vectors are numeric encodings of the memory text; each memory names its embedder "
                    "and dimensions instead of carrying its vector.",
                ],
            }
            archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        return manifest

    def _write_array(self, archive: zipfile.ZipFile, name: str, rows: Iterable[dict[str, Any]]) -> FileEntry:
        entry = FileEntry(name=name)
        digest = hashlib.sha256()
        with archive.open(name, "w", force_zip64=True) as member:

            def put(data: bytes) -> None:
                member.write(data)
                digest.update(data)
                entry.bytes += len(data)
                self.written += len(data)
                if self.max_bytes and self.written > self.max_bytes:
                    raise ExportTooLarge(f"The export exceeds {self.max_bytes} bytes uncompressed.")

            put(b"[")
            for row in rows:
                put((b"\n" if entry.rows == 0 else b",\n") + json.dumps(row, ensure_ascii=False, default=str).encode())
                entry.rows += 1
                if entry.rows % ROWS_PER_REPORT == 0:  # a long layer renews the build's lease as it goes
                    self.on_layer(name.removesuffix(".json"), entry.rows)
            put(b"\n]\n")
        entry.sha256 = digest.hexdigest()
        return entry

    # --- the layers, each an iterator of JSON rows ----------------------------------------------------------

    def _decode(self, session: AgentSession, blob: bytes | memoryview | None) -> Any:
        if blob is None:
            return None
        return decode_payload(blob, tenant_id=session.tenant_id, user_id=session.user_id)

    def _sessions(self) -> Iterator[dict[str, Any]]:
        for session in self.sessions:
            yield {
                "session_id": session.session_id,
                "user_id": session.user_id,
                "status": session.status,
                "metadata": session.metadata,
                "head_version": session.head_version,
                "created_at": _when(session.created_at),
                "updated_at": _when(session.updated_at),
                "last_activity_at": _when(session.last_activity_at),
            }

    def _events(self) -> Iterator[dict[str, Any]]:
        for session in self.sessions:
            segments = ArchiveSegment.objects.filter(session=session, kind=ArchiveKind.EVENTS).order_by("from_version")
            listed = list(segments)
            for segment in listed:
                for event in _archived(segment).event_rows(session.pk):
                    yield self._event(session, event.version, event.type, event.payload, event.created_at, True)
            done = max((segment.to_version for segment in listed), default=0)
            rows = (
                Event.objects.filter(session=session, version__gt=done)
                .order_by("version")
                .values_list("version", "type", "payload", "created_at")
                .iterator(chunk_size=_CHUNK)
            )
            first = next(rows, None)  # the query runs here: one statement, one snapshot of the events left
            # Event archival may have moved the events after `done` since the segments were listed (it records a
            # segment and deletes its rows in one commit): those below the first event left are in the segments
            # recorded since. Events archived after the query started are in `rows` still, so not read twice.
            below = first[0] if first is not None else None
            for segment in segments.filter(to_version__gt=done):
                for event in _archived(segment).event_rows(session.pk):
                    if done < event.version and (below is None or event.version < below):
                        yield self._event(session, event.version, event.type, event.payload, event.created_at, True)
            for version, kind, payload, created_at in itertools.chain([] if first is None else [first], rows):
                yield self._event(session, version, kind, payload, created_at, False)

    def _event(self, session: AgentSession, version: int, kind: str, payload: Any, at: datetime, archived: bool) -> Any:
        return {
            "session_id": session.session_id,
            "version": version,
            "type": kind,
            "payload": self._decode(session, payload),
            "created_at": _when(at),
            "archived": archived,
        }

    def _operations(self) -> Iterator[dict[str, Any]]:
        for session in self.sessions:
            segments = ArchiveSegment.objects.filter(session=session, kind=ArchiveKind.SESSION).order_by("from_version")
            listed = list(segments)
            for segment in listed:
                for operation in _archived(segment).operation_rows(session.pk):
                    yield self._operation(session, operation, archived=True)
            rows = Operation.objects.filter(session=session).order_by("created_at", "id").iterator()
            first = next(rows, None)  # the query runs here
            if first is None:
                # Session archival may have moved the whole journal since the segments were listed (it records
                # the segment and deletes the rows in one commit, and the archived session records no more).
                for segment in segments.exclude(pk__in=[segment.pk for segment in listed]):
                    for operation in _archived(segment).operation_rows(session.pk):
                        yield self._operation(session, operation, archived=True)
            for operation in itertools.chain([] if first is None else [first], rows):
                yield self._operation(session, operation, archived=False)

    def _operation(self, session: AgentSession, operation: Operation, *, archived: bool) -> dict[str, Any]:
        return {
            "session_id": session.session_id,
            "name": operation.name,
            "key": operation.key,
            "status": operation.status,
            "params": self._decode(session, operation.params),
            "result": self._decode(session, operation.result),
            "error": self._decode(session, operation.error),
            "created_at": _when(operation.created_at),
            "finished_at": _when(operation.finished_at),
            "archived": archived,
        }

    def _checkpoints(self) -> Iterator[dict[str, Any]]:
        for session in self.sessions:
            owner = owner_of(session)
            # The rows and their children counts from one statement: a save committing meanwhile is in both
            # or in neither (counted apart, a new child's parent could be missing from the counts).
            children: dict[Any, int] = {}
            # Parents have lower sequences than their children: one pass rebuilds every state, and a state is
            # dropped once its last child used it.
            states: dict[Any, dict[str, Any]] = {}
            for link, count in stored_checkpoints(session).links:
                state = next_state(link, states.get(link.parent_id), owner)
                if link.parent_id is not None:
                    children[link.parent_id] = children.get(link.parent_id, 0) - 1
                    if children[link.parent_id] <= 0:
                        states.pop(link.parent_id, None)
                if count:
                    children[link.pk] = count
                    states[link.pk] = json.loads(json.dumps(state))  # deltas patch a copy in place
                yield {
                    "session_id": session.session_id,
                    "checkpoint_id": str(link.pk),
                    "sequence": link.sequence,
                    "parent_id": str(link.parent_id) if link.parent_id else None,
                    "node_id": link.node_id,
                    "metadata": link.metadata,
                    "state": state,
                    "checksum": link.checksum,
                    "created_at": _when(link.created_at),
                }

    def _langgraph(self) -> Iterator[dict[str, Any]]:
        """Per session its checkpoints, each with the channel values it names and the writes made on top of it;
        then the rows no listed checkpoint covers, which erasure removes all the same: a task's writes saved
        before their checkpoint (the process died before it was saved), and channel values no checkpoint names
        any more (the checkpoint was saved again naming another version)."""
        for session in self.sessions:
            writes_of: set[tuple[str, str]] = set()
            values_of: set[tuple[str, str, str]] = set()
            rows = ThreadCheckpoint.objects.filter(session=session).order_by("checkpoint_ns", "checkpoint_id")
            for checkpoint_ns, checkpoint_id in rows.values_list("checkpoint_ns", "checkpoint_id").iterator():
                found = readable_checkpoint(session, checkpoint_id=checkpoint_id, checkpoint_ns=checkpoint_ns)
                if found is None:  # removed meanwhile (the agent pruned its thread)
                    continue
                writes_of.add((checkpoint_ns, checkpoint_id))
                versions = found.row.checkpoint.get("channel_versions")
                if isinstance(versions, dict):
                    values_of.update((checkpoint_ns, str(name), str(version)) for name, version in versions.items())
                yield {
                    "kind": "checkpoint",
                    "session_id": session.session_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": checkpoint_id,
                    "parent_checkpoint_id": found.row.parent_checkpoint_id or None,
                    "created_at": _when(found.row.created_at),
                    **found.state,
                }
            yield from self._langgraph_writes_without_checkpoint(session, writes_of)
            yield from self._langgraph_values_without_checkpoint(session, values_of)

    def _langgraph_writes_without_checkpoint(
        self, session: AgentSession, listed: set[tuple[str, str]]
    ) -> Iterator[dict[str, Any]]:
        for write in _rows_by_id(PendingWrite, _WRITES_WITHOUT_CHECKPOINT_SQL, [session.pk, *_columns(listed, 2)]):
            yield {
                "kind": "pending_write",
                "session_id": session.session_id,
                "checkpoint_ns": write.checkpoint_ns,
                "checkpoint_id": write.checkpoint_id,
                "task_id": write.task_id,
                "task_path": write.task_path,
                "idx": write.idx,
                "channel": write.channel,
                "value": readable_value(write.type, write.blob),
            }

    def _langgraph_values_without_checkpoint(
        self, session: AgentSession, listed: set[tuple[str, str, str]]
    ) -> Iterator[dict[str, Any]]:
        for value in _rows_by_id(ChannelBlob, _VALUES_WITHOUT_CHECKPOINT_SQL, [session.pk, *_columns(listed, 3)]):
            yield {
                "kind": "channel_value",
                "session_id": session.session_id,
                "checkpoint_ns": value.checkpoint_ns,
                "channel": value.channel,
                "version": value.version,
                "value": readable_value(value.type, value.blob),
            }

    def _langgraph_store(self) -> Iterator[dict[str, Any]]:
        """Expired items too: they are still held until the sweep removes them."""
        rows = self.person.store_items().defer("embedding").order_by("prefix", "key")
        for item in rows.iterator(chunk_size=_CHUNK):
            yield {
                "namespace": item.prefix.split("."),
                "key": item.key,
                "value": item.value,
                "indexed_for_search": item.embedding_model or None,
                "created_at": _when(item.created_at),
                "updated_at": _when(item.updated_at),
                "expires_at": _when(item.expires_at),
            }

    def _memory_rows(self) -> QuerySet[Memory]:
        # alive(): not deleted, and not hidden with their owner by an approved erasure (HiddenOwner).
        return self.person.memories([session.pk for session in self.sessions]).alive()

    def _memories(self) -> Iterator[dict[str, Any]]:
        session_ids = {session.pk: session.session_id for session in self.sessions}
        rows = self._memory_rows().defer("embedding").order_by("created_at", "id")
        for memory in rows.iterator(chunk_size=_CHUNK):
            yield {
                "memory_id": str(memory.pk),
                "scope": memory.scope,
                "user_id": memory.user_id,
                "session_id": session_ids.get(memory.session_id) if memory.session_id else None,
                "content": memory.content,
                "metadata": memory.metadata,
                "source": memory.source,
                "embedding_model": memory.embedding_model,
                "dimensions": memory.dimensions,
                "access_count": memory.access_count,
                "version": memory.version,
                "created_at": _when(memory.created_at),
                "updated_at": _when(memory.updated_at),
            }

    def _memory_history(self) -> Iterator[dict[str, Any]]:
        rows = MemoryRevision.objects.filter(memory__in=self._memory_rows()).order_by("memory_id", "version")
        for revision in rows.iterator(chunk_size=_CHUNK):
            yield {
                "memory_id": str(revision.memory_id),
                "version": revision.version,
                "kind": revision.kind,
                "actor": revision.actor,
                "previous_content": revision.previous_content,
                "content": revision.content,
                "inputs": revision.inputs,
                "created_at": _when(revision.created_at),
            }

    def _profile(self) -> Iterator[dict[str, Any]]:
        tenant, user_id = self.export.tenant, self.export.user_id
        for profile in UserProfile.objects.filter(tenant=tenant, user_id=user_id):
            yield {
                "kind": "profile",
                "user_id": profile.user_id,
                "preferences": profile.preferences,
                "facts": profile.facts,
                "interaction_count": profile.interaction_count,
                "last_active_at": _when(profile.last_active_at),
                "version": profile.version,
                "created_at": _when(profile.created_at),
                "updated_at": _when(profile.updated_at),
            }
        for fact in ProfileFactOutbox.objects.filter(tenant=tenant, user_id=user_id, processed_at__isnull=True):
            yield {
                "kind": "pending_fact",
                "fact_key": fact.fact_key,
                "operation": fact.operation,
                "content": fact.content,
                "created_at": _when(fact.created_at),
            }

    def _redis(self) -> Iterator[dict[str, Any]]:
        client = redis_client()
        for session in self.sessions:
            for pattern in session_keys_pattern(session.pk):
                keys = client.scan_iter(match=pattern, count=500) if "*" in pattern else [pattern.encode()]
                for key in keys:
                    value = _redis_value(client, key)
                    if value is not None:
                        yield {"session_id": session.session_id, "key": key.decode(), "value": value}
        session_ids = [session.session_id for session in self.sessions]
        for key in scope.idempotency_records(self.person, session_ids):
            raw = client.get(key)
            if raw is not None:
                yield {"session_id": None, "key": key, "value": _maybe_json(raw)}

    def _audit(self) -> Iterator[dict[str, Any]]:
        entries = AuditEntry.objects.filter(tenant=self.export.tenant, subject=self.export.subject)
        for entry in entries.order_by("at", "id").iterator():
            yield {
                "at": _when(entry.at),
                "actor": entry.actor,
                "action": entry.action,
                "erasure": str(entry.erasure_id) if entry.erasure_id else None,
                "export": str(entry.export_id) if entry.export_id else None,
                "details": entry.details,
            }


def _maybe_json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def _redis_value(client: Any, key: bytes) -> Any:
    kind = client.type(key)
    if kind == b"string":
        raw = client.get(key)
        return None if raw is None else _maybe_json(raw)
    if kind == b"list":
        return [_maybe_json(item) for item in client.lrange(key, 0, -1)]
    if kind == b"hash":
        return {name.decode(): _maybe_json(value) for name, value in client.hgetall(key).items()}
    return None


def build_archive(
    export: ExportRequest, *, generated_at: datetime, max_bytes: int, on_layer: Callable[[str, int], None]
) -> tuple[bytes, dict[str, Any]]:
    """The zip's bytes and its manifest. ExportTooLarge past `max_bytes` (uncompressed or compressed); Erased
    while an approved erasure of the person is being carried out."""
    if erasure_under_way(tenant=export.tenant, subject=export.subject):
        raise Erased(
            "The person's erasure was approved and is being carried out: nothing of theirs is left to export. "
            "File the export again once the erasure is verified."
        )
    builder = Builder(export=export, on_layer=on_layer, max_bytes=max_bytes)
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        manifest = builder.build(spool, generated_at=generated_at)
        size = spool.tell()
        if size > max_bytes:
            raise ExportTooLarge(f"The export archive exceeds {max_bytes} bytes.")
        spool.seek(0)
        return spool.read(), manifest
