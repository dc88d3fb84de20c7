"""Retention of checkpoints: what expires, and removing it session by session without breaking a kept chain.

A checkpoint expires when it is older than CHECKPOINT_RETENTION_DAYS and is not among the session's latest
CHECKPOINT_KEEP_LATEST by sequence (whichever branch they are on). Sequences are gap-free per session and the
latest ones are never removed, so "among the latest N" is `sequence > head.last_sequence - N`.

A kept checkpoint may build on an expired one (a young fork of an old checkpoint, or the oldest of the
latest N). Before its parent goes, it becomes a chain start: a delta is rewritten as the full snapshot of its
(verified) state, the parent link is cleared, and the removed parent's checksum and sequence are kept on the
row. Its own checksum was computed over that parent checksum and is not changed, so `verify` checks the link
against the kept value and the chain stays tamper-evident from there on.

Work is done in short transactions of at most `batch_size` removals, each holding the session's checkpoint
head row lock (the lock saves take), so a save never sees half a step and a fork saved meanwhile is found
and re-anchored by the next step. Two workers never remove the same row: a step re-reads what expires after
taking the lock, and sessions another worker holds are skipped (`SKIP LOCKED`) and revisited at the end.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import F, QuerySet

from checkpoints_app.chain import owner_of, rebuild
from checkpoints_app.models import Checkpoint, CheckpointHead, CheckpointKind
from checkpoints_app.storage import CURRENT_SCHEMA_VERSION, Body, encode_body
from memory_admin.errors import IntegrityFailure
from sessions_app.models import AgentSession


@dataclass(frozen=True)
class Policy:
    cutoff: datetime
    keep_latest: int


@dataclass
class SessionOutcome:
    deleted: int = 0
    # Kept checkpoints that became chain starts because retention removed their parent.
    rewritten: int = 0
    # The session was held by another worker (or a save) when we tried; it is revisited at the end.
    busy: bool = False
    # A kept checkpoint's chain failed verification: nothing more is removed from this session.
    broken: dict[str, Any] | None = None


_SESSIONS_SQL = """
SELECT DISTINCT c.session_id
FROM checkpoints_app_checkpoint c
JOIN checkpoints_app_checkpointhead h ON h.session_id = c.session_id
WHERE c.created_at < %(cutoff)s AND c.sequence <= h.last_sequence - %(keep)s AND c.session_id > %(after)s
ORDER BY c.session_id
LIMIT %(limit)s
"""


def sessions_with_expired(policy: Policy, *, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
    """Ids of sessions (ordered, after `after`) that hold at least one expired checkpoint."""
    params: dict[str, Any] = {
        "cutoff": policy.cutoff,
        "keep": policy.keep_latest,
        "after": after or uuid.UUID(int=0),
        "limit": limit,
    }
    with connection.cursor() as cursor:
        cursor.execute(_SESSIONS_SQL, params)
        return [row[0] for row in cursor.fetchall()]


def _expired(session_pk: uuid.UUID, last_sequence: int, policy: Policy) -> QuerySet[Checkpoint]:
    return Checkpoint.objects.filter(
        session_id=session_pk, sequence__lte=last_sequence - policy.keep_latest, created_at__lt=policy.cutoff
    )


def _orphans(doomed: list[uuid.UUID]) -> list[Checkpoint]:
    """Checkpoints outside `doomed` whose parent is in it, with that parent's checksum and sequence."""
    return list(
        Checkpoint.objects.filter(parent_id__in=doomed)
        .exclude(pk__in=doomed)
        .defer("payload")
        .annotate(removed_checksum=F("parent__checksum"), removed_sequence=F("parent__sequence"))
        .order_by("sequence")
    )


def _anchored(session: AgentSession, orphan: Checkpoint, *, write: bool) -> None:
    """Make `orphan` a chain start anchored on its (about to be removed) parent; with write=False only check
    that it can be done. IntegrityFailure when its chain does not verify, so it cannot be rewritten honestly."""
    fields: dict[str, Any] = {
        "parent": None,
        "pruned_parent_checksum": getattr(orphan, "removed_checksum"),  # noqa: B009 (an annotation)
        "pruned_parent_sequence": getattr(orphan, "removed_sequence"),  # noqa: B009
    }
    if orphan.kind == CheckpointKind.DELTA:
        rebuilt = rebuild(session=session, checkpoint_id=orphan.pk)
        if orphan.schema_version != CURRENT_SCHEMA_VERSION:
            # Its checksum formula is that of its own version; re-encoding it in the newest version would
            # change which formula verifies it. Add a writer for old versions before this can happen.
            raise IntegrityFailure(
                f"Checkpoint {orphan.sequence} is stored in schema version {orphan.schema_version} and cannot be "
                "rewritten as a full snapshot.",
                details={"checkpoint_id": str(orphan.pk), "sequence": orphan.sequence, "reason": "old schema"},
            )
        fields["kind"] = CheckpointKind.FULL
        fields["payload"] = encode_body(Body(state=rebuilt.state), owner=owner_of(session))
    if write:
        Checkpoint.objects.filter(pk=orphan.pk).update(**fields)


def _delete(ids: list[uuid.UUID]) -> int:
    # Through the ORM rather than a raw DELETE: rows that hang off a checkpoint (the LangGraph model will add
    # some) go with it. The rows' children are in `ids` or were just re-anchored, so RESTRICT allows it.
    _, per_model = Checkpoint.objects.filter(pk__in=ids).defer("payload").delete()
    return per_model.get(Checkpoint._meta.label, 0)


def prune_step(session: AgentSession, policy: Policy, *, limit: int, wait: bool) -> SessionOutcome | None:
    """Remove up to `limit` of the session's expired checkpoints (newest first) in one transaction.

    None when there is nothing (left) to remove; a `busy` outcome when the head row is locked and `wait` is
    False. Newest first: a parent has a lower sequence than its children, so the expired rows left behind
    never build on removed ones, and every kept row that did was re-anchored in the same transaction.
    """
    try:
        with transaction.atomic():
            head = CheckpointHead.objects.select_for_update(skip_locked=not wait).filter(session=session).first()
            if head is None:
                exists = CheckpointHead.objects.filter(session=session).exists()
                return SessionOutcome(busy=True) if exists and not wait else None
            doomed = list(
                _expired(session.pk, head.last_sequence, policy)
                .order_by("-sequence")
                .values_list("pk", flat=True)[:limit]
            )
            if not doomed:
                return None
            orphans = _orphans(doomed)
            for orphan in orphans:
                _anchored(session, orphan, write=True)
            return SessionOutcome(deleted=_delete(doomed), rewritten=len(orphans))
    except IntegrityFailure as failure:  # the transaction rolled back: this step changed nothing
        return SessionOutcome(broken=failure.details)


def plan_session(session: AgentSession, policy: Policy) -> SessionOutcome:
    """What `prune_step` would do to the session until nothing is left, without changing anything."""
    head = CheckpointHead.objects.filter(session=session).first()
    if head is None:
        return SessionOutcome()
    doomed = list(_expired(session.pk, head.last_sequence, policy).values_list("pk", flat=True))
    orphans = _orphans(doomed) if doomed else []
    try:
        for orphan in orphans:
            _anchored(session, orphan, write=False)
    except IntegrityFailure as failure:
        return SessionOutcome(broken=failure.details)
    return SessionOutcome(deleted=len(doomed), rewritten=len(orphans))
