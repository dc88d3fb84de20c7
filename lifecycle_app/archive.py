"""The archive format: a session's rows as gzip-compressed JSON, with the stored payload bytes kept as written.

Payloads go in exactly as the codec stored them (base64 of the bytes, so encrypted ones stay encrypted under
the person's key and erasing the person makes the archive unreadable too), with every other column, so that
a restore puts back rows identical to the ones that left. The document names the session by its internal id
only: no user id, no session id chosen by a client.

    {"format": 1, "kind": "events" | "session", "tenant": "<uuid>", "session": "<uuid>",
     "from_version": 1, "to_version": 500,
     "events": [{"id", "version", "type", "payload", "schema_version", "idempotency_key", "created_at"}],
     "snapshots": [{"id", "version", "state", "schema_version", "created_at"}],
     "operations": [{"id", "name", "key", "status", "params", "result", "error", "created_at", "finished_at"}]}
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memory_admin.errors import IntegrityFailure
from sessions_app.models import Event, EventSnapshot, Operation

FORMAT = 1


def _b64(blob: bytes | memoryview | None) -> str | None:
    return None if blob is None else base64.b64encode(bytes(blob)).decode("ascii")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _maybe_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def event_doc(row: Event) -> dict[str, Any]:
    return {
        "id": row.pk,
        "version": row.version,
        "type": row.type,
        "payload": _b64(row.payload),
        "schema_version": row.schema_version,
        "idempotency_key": row.idempotency_key,
        "created_at": _when(row.created_at),
    }


def snapshot_doc(row: EventSnapshot) -> dict[str, Any]:
    return {
        "id": row.pk,
        "version": row.version,
        "state": _b64(row.state),
        "schema_version": row.schema_version,
        "created_at": _when(row.created_at),
    }


def operation_doc(row: Operation) -> dict[str, Any]:
    return {
        "id": str(row.pk),
        "name": row.name,
        "key": row.key,
        "status": row.status,
        "params": _b64(row.params),
        "result": _b64(row.result),
        "error": _b64(row.error),
        "created_at": _when(row.created_at),
        "finished_at": _when(row.finished_at),
    }


@dataclass
class ArchiveDocument:
    kind: str
    tenant: str
    session: str
    from_version: int = 0
    to_version: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"events": len(self.events), "snapshots": len(self.snapshots), "operations": len(self.operations)}

    def event_rows(self, session_pk: uuid.UUID) -> list[Event]:
        return [
            Event(
                id=doc["id"],
                session_id=session_pk,
                version=doc["version"],
                type=doc["type"],
                payload=_bytes(doc["payload"]),
                schema_version=doc["schema_version"],
                idempotency_key=doc["idempotency_key"],
                created_at=_time(doc["created_at"]),
            )
            for doc in self.events
        ]

    def snapshot_rows(self, session_pk: uuid.UUID) -> list[EventSnapshot]:
        return [
            EventSnapshot(
                id=doc["id"],
                session_id=session_pk,
                version=doc["version"],
                state=_bytes(doc["state"]),
                schema_version=doc["schema_version"],
                created_at=_time(doc["created_at"]),
            )
            for doc in self.snapshots
        ]

    def operation_rows(self, session_pk: uuid.UUID) -> list[Operation]:
        return [
            Operation(
                id=doc["id"],
                session_id=session_pk,
                name=doc["name"],
                key=doc["key"],
                status=doc["status"],
                params=_bytes(doc["params"]),
                result=_bytes(doc["result"]),
                error=_bytes(doc["error"]),
                created_at=_time(doc["created_at"]),
                finished_at=_maybe_time(doc["finished_at"]),
            )
            for doc in self.operations
        ]


def pack(document: ArchiveDocument) -> tuple[bytes, str]:
    """The compressed bytes of a document and their SHA-256 (hex)."""
    body = json.dumps({"format": FORMAT, **document.__dict__}, separators=(",", ":")).encode()
    # mtime=0: the same rows always give the same bytes, so a retried step writes an identical object.
    data = gzip.compress(body, compresslevel=6, mtime=0)
    return data, hashlib.sha256(data).hexdigest()


def unpack(data: bytes, *, sha256: str) -> ArchiveDocument:
    """The document in `data`; IntegrityFailure when the bytes are not the ones that were archived."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise IntegrityFailure("An archive object does not match its recorded checksum.")
    raw = json.loads(gzip.decompress(data))
    if raw.pop("format", None) != FORMAT:
        raise IntegrityFailure("An archive object has an unknown format.")
    return ArchiveDocument(**raw)
