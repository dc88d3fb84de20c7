"""Reads of checkpoints, always within one session the caller already holds (so within its tenant).

Every read that returns a state rebuilds it from storage and verifies its chain (`chain.rebuild`): a
tampered row is an IntegrityFailure (409) naming the first bad link, never a silently wrong state.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BigIntegerField, Count, F, Func, QuerySet, Sum

from checkpoints_app.chain import ROW_HASH_SQL, Rebuilt, SessionNotFound, Verification, rebuild, verify_session
from checkpoints_app.models import Checkpoint, CheckpointHead
from checkpoints_app.patching import Summary, make_patch, summarise
from memory_admin.errors import NotFound
from memory_admin.metrics import RECOVERIES
from sessions_app.identity import SessionIdentity
from sessions_app.models import AgentSession, Event

# A diff lists at most this many events; `events_truncated` says when there were more.
DIFF_MAX_EVENTS = 500


def checkpoints_for(session: AgentSession) -> QuerySet[Checkpoint]:
    """The session's checkpoints without their payloads, each with its parent's sequence (branches show)."""
    return Checkpoint.objects.filter(session=session).defer("payload").annotate(parent_sequence=F("parent__sequence"))


def _stored_bytes() -> Func:
    return Func(F("payload"), function="octet_length", output_field=BigIntegerField())


def checkpoint_page(*, session: AgentSession, before: int | None, limit: int) -> list[Checkpoint]:
    """Newest first, the first `limit` + 1 with a sequence below `before` (keyset: the same cost at any
    depth), each with its parent's sequence and `stored_bytes` (the payload's size as stored)."""
    rows = checkpoints_for(session).annotate(stored_bytes=_stored_bytes()).order_by("-sequence")
    if before is not None:
        rows = rows.filter(sequence__lt=before)
    return list(rows[: limit + 1])


def checkpoint_totals(*, session: AgentSession) -> dict[str, int]:
    """How many checkpoints the session holds and the bytes their payloads take as stored."""
    totals = Checkpoint.objects.filter(session=session).aggregate(count=Count("pk"), stored_bytes=Sum(_stored_bytes()))
    return {"count": totals["count"], "stored_bytes": totals["stored_bytes"] or 0}


def get_checkpoint(*, session: AgentSession, checkpoint_id: object) -> Rebuilt:
    """The checkpoint with its verified state; NotFound (404) when it is not one of this session's."""
    return rebuild(session=session, checkpoint_id=checkpoint_id)


def get_latest_checkpoint(*, session: SessionIdentity) -> Rebuilt:
    """The session's newest checkpoint (highest sequence, whichever branch) with its verified state.

    Counted as a recovery of kind "checkpoint": reading the latest is how an agent resumes after a crash.
    SessionNotFound when the session is not (or no longer) the tenant's (the caller may know it from memory).
    """
    try:
        rebuilt = rebuild(session=session)
    except SessionNotFound:
        raise
    except NotFound:
        raise NotFound("This session has no checkpoints yet.", details={"session_id": session.session_id}) from None
    RECOVERIES.labels(kind="checkpoint").inc()
    return rebuilt


def get_checkpoint_by_sequence(*, session: AgentSession, sequence: int) -> Rebuilt:
    try:
        return rebuild(session=session, sequence=sequence)
    except NotFound:
        raise NotFound("No checkpoint with this sequence in this session.", details={"sequence": sequence}) from None


def events_between(
    *, session: AgentSession, after: int, upto: int, limit: int = DIFF_MAX_EVENTS, with_payloads: bool = False
) -> list[Event]:
    """Events with a version in (after, upto], oldest first, at most `limit` + 1 (to tell there are more);
    their payloads are loaded only when asked for."""
    fields = ("version", "type", "created_at", "payload") if with_payloads else ("version", "type", "created_at")
    return list(
        Event.objects.filter(session=session, version__gt=after, version__lte=upto)
        .order_by("version")
        .only(*fields)[: limit + 1]
    )


@dataclass
class Diff:
    source: Checkpoint
    target: Checkpoint
    patch: list[dict[str, Any]]
    summary: Summary
    events: list[Event]
    events_truncated: bool
    source_state: dict[str, Any]
    target_state: dict[str, Any]
    # The events between the two from the first on up to this version were moved to the archive (event
    # archival), so `events` starts after it; None when none of them were.
    events_archived_through: int | None = None


def diff_checkpoints(*, session: AgentSession, from_id: object, to_id: object, with_payloads: bool = False) -> Diff:
    """What changed from one checkpoint to another (either order, any branches) and the events recorded
    between them: versions in (older event head, newer event head], with their payloads when asked for.
    Those of them that event archival moved to the archive are not listed: `events_archived_through` says up
    to which version (the state diff does not need them)."""
    source = rebuild(session=session, checkpoint_id=from_id)
    target = rebuild(session=session, checkpoint_id=to_id)
    low, high = sorted((source.checkpoint.event_version, target.checkpoint.event_version))
    events = events_between(session=session, after=low, upto=high, with_payloads=with_payloads)
    # Versions are gap-free and archived from 1 up, so a first version past low + 1 means the ones before it
    # are in the archive (as a read of the event stream tells, sessions_app's `_refuse_archived_start`).
    first = events[0].version if events else high + 1
    return Diff(
        source=source.checkpoint,
        target=target.checkpoint,
        patch=make_patch(source.state, target.state),
        summary=summarise(source.state, target.state),
        events=events[:DIFF_MAX_EVENTS],
        events_truncated=len(events) > DIFF_MAX_EVENTS,
        source_state=source.state,
        target_state=target.state,
        events_archived_through=first - 1 if first > low + 1 else None,
    )


def verify_checkpoints(*, session: AgentSession) -> Verification:
    """Recompute the whole chain of the session; the report names the first bad link, if any."""
    return verify_session(session)


# Every column a verification reads, per row, hashed by the database in sequence order after the head's (which
# must name the newest): equal fingerprints mean the very rows a verification already judged.
_FINGERPRINT_SQL = f"""
SELECT sha256(
    convert_to(coalesce((
        SELECT concat(h.last_sequence, ':', h.latest_id) FROM {CheckpointHead._meta.db_table} h WHERE h.session_id = %s
    ), '-'), 'UTF8')
    || coalesce(string_agg({ROW_HASH_SQL} || convert_to(concat(c.id, ':', coalesce(c.parent_id::text, '-'), ':',
        c.pruned_parent_checksum, ':', coalesce(c.pruned_parent_sequence::text, '-')), 'UTF8'), ''::bytea
        ORDER BY c.sequence), ''::bytea))
FROM {Checkpoint._meta.db_table} c
LEFT JOIN {Checkpoint._meta.db_table} parent ON parent.id = c.parent_id
WHERE c.session_id = %s
"""  # noqa: S608 - table names come from the model; the value is bound
_verified: OrderedDict[tuple[Any, bytes], Verification] = OrderedDict()
_VERIFIED_KEPT = 256


def chain_status(*, session: AgentSession) -> Verification:
    """The verification of the session's chain for pages that show it on every view: recomputed whenever a
    stored row differs in any verified column from rows this process verified before (the database hashes
    them, a few milliseconds), else that verification. A tampered row or head changes the hash, so it is caught."""
    with connection.cursor() as cursor:
        cursor.execute(_FINGERPRINT_SQL, [session.pk, session.pk])
        row = cursor.fetchone()
    key = (session.pk, bytes(row[0]) if row and row[0] is not None else b"")
    found = _verified.get(key)
    if found is not None:
        _verified.move_to_end(key)
        return found
    verification = verify_session(session)
    _verified[key] = verification
    if len(_verified) > _VERIFIED_KEPT:
        _verified.popitem(last=False)
    return verification
