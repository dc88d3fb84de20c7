"""Migration of payloads written before per-person encryption (codec tags J and Z) to their person's key.

Each table is walked once in primary-key order, `batch` rows per short transaction that locks the rows it
rewrites. Only rows that are still unencrypted are selected, so the migration is idempotent (a second run
finds nothing) and resumable (after a crash, a rerun continues with what is left). Writers running at the
same time already encrypt, so no new legacy rows appear behind the walk.

Rows of erased sessions are left alone: their person's key is destroyed, and encrypting their remains
would create a new live key for someone who was forgotten. The purge removes those rows.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from checkpoints_app.storage import PLAIN, ZLIB
from memory_admin.codec import ENCRYPTED, decode_payload, encoder_for

_E = ENCRYPTED[0]


@dataclass(frozen=True)
class Table:
    """A table with codec-written columns, and how a row finds its session."""

    name: str
    key: str  # primary key column
    columns: tuple[str, ...]
    checkpoint_storage: bool = False  # payload = storage tag (p/z) + codec bytes (checkpoints_app.storage)


TABLES = {
    "events": Table("sessions_app_event", "id", ("payload",)),
    "snapshots": Table("sessions_app_eventsnapshot", "id", ("state",)),
    "operations": Table("sessions_app_operation", "id", ("params", "result", "error")),
    "checkpoints": Table("checkpoints_app_checkpoint", "id", ("payload",), checkpoint_storage=True),
}


def _inner(blob: bytes, table: Table) -> bytes:
    """The codec bytes inside a stored value."""
    if not table.checkpoint_storage:
        return blob
    tag, rest = blob[:1], blob[1:]
    return zlib.decompress(rest) if tag == ZLIB else rest


def _needs(blob: Any, table: Table) -> bool:
    if blob is None:
        return False
    inner = _inner(bytes(blob), table)
    return bool(inner) and inner[0] != _E


def _legacy_predicate(table: Table) -> str:
    """SQL: some column of the row is not yet encrypted (checkpoints: look past the storage tag)."""
    parts = []
    for column in table.columns:
        if table.checkpoint_storage:
            # z-wrapped rows are compressed around the codec bytes: always rewrite them.
            parts.append(f"(get_byte(t.{column}, 0) = {ZLIB[0]} or get_byte(t.{column}, 1) <> {_E})")
        else:
            parts.append(f"(t.{column} is not null and length(t.{column}) > 0 and get_byte(t.{column}, 0) <> {_E})")
    return " or ".join(parts)


def _batch_sql(table: Table) -> str:
    columns = ", ".join(f"t.{column}" for column in table.columns)
    return (
        f"select t.{table.key}, s.tenant_id, s.user_id, {columns} "  # noqa: S608 - names from TABLES
        f"from {table.name} t join sessions_app_agentsession s on s.id = t.session_id "
        f"where t.{table.key} > %s and s.erased_at is null and ({_legacy_predicate(table)}) "
        f"order by t.{table.key} limit %s for update of t"
    )


def encrypt_table(
    name: str, *, batch: int = 1000, dry_run: bool = False, report: Callable[[str, int], None] | None = None
) -> int:
    """Encrypt the legacy rows of one table; returns how many rows were (or, dry, would be) rewritten."""
    table = TABLES[name]
    sql = _batch_sql(table)
    after: Any = uuid.UUID(int=0) if name in ("operations", "checkpoints") else 0
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [after, batch])
            rows = cursor.fetchall()
            if not rows:
                return total
            encoders: dict[tuple[Any, str], Callable[[Any], bytes]] = {}
            updates = []
            for pk, tenant_id, user_id, *values in rows:
                person = (tenant_id, user_id)
                if person not in encoders:
                    encoders[person] = encoder_for(tenant_id=tenant_id, user_id=user_id)
                encode = encoders[person]
                new_values = []
                for value in values:
                    if not _needs(value, table):
                        new_values.append(value)
                        continue
                    plain = decode_payload(_inner(bytes(value), table), tenant_id=tenant_id, user_id=user_id)
                    encoded = encode(plain)
                    new_values.append(PLAIN + encoded if table.checkpoint_storage else encoded)
                updates.append([*new_values, pk])
            if not dry_run:
                assignments = ", ".join(f"{column} = %s" for column in table.columns)
                cursor.executemany(
                    f"update {table.name} set {assignments} where {table.key} = %s",  # noqa: S608
                    updates,
                )
            after = rows[-1][0]
        total += len(rows)
        if report is not None:
            report(name, total)
        if len(rows) < batch:
            return total


def legacy_counts() -> dict[str, int]:
    """How many rows per table still hold an unencrypted payload (of people not erased)."""
    counts = {}
    with connection.cursor() as cursor:
        for name, table in TABLES.items():
            cursor.execute(
                f"select count(*) from {table.name} t join sessions_app_agentsession s on s.id = t.session_id "  # noqa: S608
                f"where s.erased_at is null and ({_legacy_predicate(table)})"
            )
            counts[name] = int(cursor.fetchone()[0])
    return counts
