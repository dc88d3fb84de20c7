"""Writes of checkpoints: saving one, and retention."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework.exceptions import ParseError

from checkpoints_app.cache import Remembered, states
from checkpoints_app.chain import (
    ROW_VERSION_SQL,
    Rebuilt,
    load_path,
    max_state_bytes,
    owner_of,
    rebuild,
    rebuild_path,
)
from checkpoints_app.models import Checkpoint, CheckpointHead, CheckpointKind
from checkpoints_app.patching import PatchError, apply_copying, check_patched, check_pointers, delta
from checkpoints_app.retention import Policy, SessionOutcome, plan_session, prune_step, sessions_with_expired
from checkpoints_app.storage import CURRENT_SCHEMA_VERSION, Body, chain_checksum, encode_body
from memory_admin.api.parsers import MAX_JSON_DEPTH
from memory_admin.codec import canonical_json, dumps
from memory_admin.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable, ValidationFailed
from memory_admin.live import publish_on_commit, session_group
from memory_admin.metrics import CHECKPOINT_SAVE_SECONDS
from memory_admin.sql import as_jsonb, run
from sessions_app.identity import SessionIdentity
from sessions_app.models import AgentSession
from sessions_app.selectors import session_row


@dataclass(frozen=True)
class SaveOutcome:
    checkpoint: Checkpoint
    # False when the same save was already stored (a retry): nothing new was written.
    created: bool


@dataclass(frozen=True)
class _Candidate:
    """What a save would store: the new full state, and its parent (verified)."""

    state: dict[str, Any]
    state_json: bytes
    parent: Rebuilt | None = None

    @property
    def parent_checksum(self) -> str | None:
        return self.parent.checkpoint.checksum if self.parent is not None else None


def _lock_head(session: AgentSession) -> CheckpointHead:
    """Lock the session's checkpoint head row (creating it on the first save); saves queue up behind it."""
    head = CheckpointHead.objects.select_for_update().filter(session=session).first()
    if head is None:
        CheckpointHead.objects.bulk_create([CheckpointHead(session=session)], ignore_conflicts=True)
        head = CheckpointHead.objects.select_for_update().get(session=session)
    return head


def _summary(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {"id": str(checkpoint.pk), "sequence": checkpoint.sequence, "checksum": checkpoint.checksum}


def _rebuild_parent(session: AgentSession, parent_id: uuid.UUID) -> Rebuilt:
    try:
        return rebuild(session=session, checkpoint_id=parent_id)
    except NotFound:
        raise Unprocessable(
            "parent_id names no checkpoint of this session.", details={"parent_id": str(parent_id)}
        ) from None


def _checked_json(value: Any, what: str) -> bytes:
    """Canonical bytes of `value`; ValidationFailed when it holds what JSON cannot (NaN, Infinity, 1e999)."""
    try:
        return canonical_json(value)
    except (ValueError, RecursionError):
        raise ValidationFailed(f"{what} holds a value JSON cannot represent (NaN or an out-of-range number).") from None


# A full state arrives one level down in a request body (`{"state": ...}`), so it is at most this deep; a
# patched state is held to the same, so whatever state a read returns can be saved back as a full state.
STATE_MAX_DEPTH = MAX_JSON_DEPTH - 1


def _patched(parent: Rebuilt, patch: list[Any]) -> _Candidate:
    """The parent's state with the client's patch applied (the parent's state is left as it was)."""
    limit = max_state_bytes()
    try:
        check_pointers(patch)
        result = apply_copying(parent.state, patch, max_bytes=limit)
        check_patched(result, patch, max_depth=STATE_MAX_DEPTH)
    except PatchError as exc:
        raise Unprocessable(f"The patch cannot be applied to the parent's state: {exc}.") from None
    except ParseError:  # (its strings came through the request parser, which holds them to the same rules)
        raise Unprocessable(
            f"The patched state would be nested deeper than {STATE_MAX_DEPTH} levels.",
            details={"max_depth": STATE_MAX_DEPTH},
        ) from None
    state_json = _checked_json(result, "The patched state")
    if len(state_json) > limit:
        raise PayloadTooLarge(
            f"The patched state would be {len(state_json)} bytes; the limit is {limit}.",
            details={"limit": limit, "size": len(state_json)},
        )
    return _Candidate(state=result, state_json=state_json, parent=parent)


def _candidate(
    *, session: AgentSession, parent_id: uuid.UUID | None, state: dict[str, Any] | None, patch: list[Any] | None
) -> _Candidate:
    """The full state a save would store, with its parent rebuilt (and verified) when it has one."""
    if parent_id is None:
        if state is None:
            raise ValidationFailed("A `patch` needs the `parent_id` it applies to.", details={"field": "parent_id"})
        return _Candidate(state=state, state_json=_checked_json(state, "state"))
    parent = _rebuild_parent(session, parent_id)
    if state is not None:
        return _Candidate(state=state, state_json=_checked_json(state, "state"), parent=parent)
    return _patched(parent, patch or [])


def _stored_body(candidate: _Candidate, patch: list[Any] | None) -> tuple[str, Body]:
    """Full snapshot or delta: a delta only while the branch is short and the delta is smaller."""
    full = (CheckpointKind.FULL, Body(state=candidate.state))
    parent = candidate.parent
    if parent is None or parent.depth + 1 >= settings.CHECKPOINT_FULL_EVERY:
        return full
    if patch is None:
        patch = delta(parent.state, candidate.state)
    if len(dumps(patch)) >= len(candidate.state_json):
        return full
    return CheckpointKind.DELTA, Body(patch=patch)


def _replay(
    *,
    session: AgentSession,
    head: CheckpointHead,
    sequence: int,
    node_id: str,
    metadata: dict[str, Any],
    state: dict[str, Any] | None,
    patch: list[Any] | None,
    parent_id: uuid.UUID | None,
    checksum: str | None,
) -> SaveOutcome:
    """A save naming a sequence that is already taken: the stored one if it is the same save, else 409 (also
    when retention removed it since: it cannot be compared any more)."""
    existing = Checkpoint.objects.filter(session=session, sequence=sequence).first()
    if existing is None:
        # Sequences are given out without gaps, so a taken one that is not stored was removed by retention.
        raise Conflict(
            f"Checkpoint {sequence} was removed by retention; the next sequence is {head.last_sequence + 1}.",
            details={
                "sequence": sequence,
                "removed_by_retention": True,
                "next_sequence": head.last_sequence + 1,
                "latest": _summary(head.latest),
            },
        )
    conflict = Conflict(
        f"Checkpoint {sequence} already exists with different content; the next sequence is {head.last_sequence + 1}.",
        details={"sequence": sequence, "next_sequence": head.last_sequence + 1, "latest": _summary(head.latest)},
    )
    if parent_id is not None and parent_id != existing.parent_id:
        raise conflict
    candidate = _candidate(session=session, parent_id=existing.parent_id, state=state, patch=patch)
    computed = chain_checksum(
        parent_checksum=candidate.parent_checksum,
        sequence=sequence,
        node_id=node_id,
        metadata=metadata,
        state_json=candidate.state_json,
    )
    if checksum is not None and checksum != computed:
        raise _checksum_mismatch(sent=checksum, computed=computed)
    if computed != existing.checksum:
        raise conflict
    return SaveOutcome(checkpoint=existing, created=False)


def _checksum_mismatch(*, sent: str, computed: str) -> Unprocessable:
    return Unprocessable(
        "The checksum you sent does not match the state the server would store.",
        details={"sent": sent, "computed": computed},
    )


def save_checkpoint(
    *,
    session: SessionIdentity,
    node_id: str,
    state: dict[str, Any] | None = None,
    patch: list[Any] | None = None,
    parent_id: uuid.UUID | None = None,
    sequence: int | None = None,
    checksum: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> SaveOutcome:
    """Save the agent's state after `node_id` ran, as a child of `parent_id` (default: the latest checkpoint).

    The agent sends either the full `state` or a `patch` (RFC 6902) against the parent's state. The user
    gets the stored checkpoint: its server-assigned sequence (the session's next, also for a fork from an
    older checkpoint) and its chained checksum. Sending `sequence` makes the save conditional: a retry of a
    save that is already stored returns it (created=False).

    What can go wrong: ValidationFailed (400) for neither or both of state and patch, or a patch without a
    parent; Unprocessable (422) for an unknown parent, a patch that does not apply, or a `checksum` that is
    not the server's; Conflict (409) when `sequence` is taken by different content or is not the next one;
    PayloadTooLarge (413) when a patch grows the state past CHECKPOINT_MAX_STATE_BYTES; IntegrityFailure
    (409) when the parent's stored chain does not verify. Nothing is stored in any of these cases.

    The usual save — on top of the session's latest checkpoint — is one conditional statement when this
    process remembers the parent verified (`_save_on_remembered`), else one read and one conditional
    statement (`_save_on_latest`); a fork, a retry of a stored sequence, or a save that lost a race to
    another takes the session's checkpoint lock and decides there.
    """
    # Timed around the transaction, commit included: that is what the agent waits for.
    with CHECKPOINT_SAVE_SECONDS.time():
        if (state is None) == (patch is None):
            raise ValidationFailed("Send exactly one of `state` (the full state) and `patch` (against the parent).")
        if patch is not None and parent_id is None:
            raise ValidationFailed("A `patch` needs the `parent_id` it applies to.", details={"field": "parent_id"})
        metadata = metadata if metadata is not None else {}
        _checked_json(metadata, "metadata")
        metadata = as_jsonb(metadata)  # the checksum covers what a read will give
        request = _SaveRequest(
            session=session,
            node_id=node_id,
            state=state,
            patch=patch,
            parent_id=parent_id,
            sequence=sequence,
            checksum=checksum,
            metadata=metadata,
        )
        outcome = _save_on_remembered(request)
        if outcome is not None:
            return outcome
        request = replace(request, session=session_row(session))
        return _save_on_latest(request) or _save_locked(request)


@dataclass(frozen=True)
class _SaveRequest:
    session: Any  # SessionIdentity for the remembered save, the AgentSession row for the others
    node_id: str
    state: dict[str, Any] | None
    patch: list[Any] | None
    parent_id: uuid.UUID | None
    sequence: int | None
    checksum: str | None
    metadata: dict[str, Any]


# What a save returns of the row it inserted: the first half of its ROW_VERSION_SQL (its parent's half is
# known from the parent's path), and the event head it recorded.
_RETURNING = "ctid::text || '@' || xmin::text, event_version"
# The session, if it is still the tenant's and visible: a save records its event head as it stands.
_LIVE_SESSION = f"""live AS (
    SELECT head_version FROM {AgentSession._meta.db_table}
    WHERE id = %(session)s AND tenant_id = %(tenant)s AND erased_at IS NULL
)"""  # noqa: S608 - table names come from the models; every value is bound
_INSERT_CHECKPOINT = f"""
INSERT INTO {Checkpoint._meta.db_table} (id, session_id, sequence, parent_id, node_id, metadata, schema_version,
    kind, payload, checksum, event_version, created_at, pruned_parent_checksum, pruned_parent_sequence)
SELECT %(id)s, %(session)s, head.last_sequence, %(parent)s::uuid, %(node)s, %(metadata)s::jsonb, %(schema)s,
    %(kind)s, %(payload)s, %(checksum)s, (SELECT head_version FROM live), %(created_at)s, '', NULL
FROM head
RETURNING {_RETURNING}
"""  # noqa: S608 - table names come from the models; every value is bound

# The head moves to the new checkpoint only if it still is where this save read it (same last sequence and
# latest), and the checkpoint is inserted only if the head moved: one atomic statement, no lock held while
# the state is computed. The parent is the head's latest, which retention never removes.
_SAVE_SQL = f"""
WITH {_LIVE_SESSION}, head AS (
    INSERT INTO {CheckpointHead._meta.db_table} AS h (session_id, last_sequence, latest_id)
    SELECT %(session)s, %(sequence)s, %(id)s FROM live
    ON CONFLICT (session_id) DO UPDATE SET last_sequence = EXCLUDED.last_sequence, latest_id = EXCLUDED.latest_id
    WHERE h.last_sequence = %(sequence)s - 1 AND h.latest_id IS NOT DISTINCT FROM %(parent)s::uuid
    RETURNING h.last_sequence
){_INSERT_CHECKPOINT}"""  # noqa: S608 - table names come from the models; every value is bound


# The same, for a save whose parent's verified state this process remembers (an agent's next step): the head
# moves only if, besides, the parent row is still the version that state was verified from — the check a read
# of the parent makes of its own row, done by the database in the same statement. One round trip per save.
# (Older rows of the path are not looked at here: the new link is computed from the state they were verified
# to give, and a row edited since is caught, and named, by the next read of the path.)
_SAVE_ON_REMEMBERED_SQL = f"""
WITH {_LIVE_SESSION}, verified AS (
    SELECT {ROW_VERSION_SQL} AS row_version
    FROM {Checkpoint._meta.db_table} c
    LEFT JOIN {Checkpoint._meta.db_table} parent ON parent.id = c.parent_id
    WHERE c.id = %(parent)s::uuid AND c.session_id = %(session)s
), head AS (
    UPDATE {CheckpointHead._meta.db_table} AS h SET last_sequence = %(sequence)s, latest_id = %(id)s
    WHERE h.session_id = %(session)s AND h.last_sequence = %(sequence)s - 1 AND h.latest_id = %(parent)s::uuid
        AND (SELECT row_version FROM verified) = %(parent_version)s AND EXISTS (SELECT 1 FROM live)
    RETURNING h.last_sequence
){_INSERT_CHECKPOINT}"""  # noqa: S608 - table names come from the models; every value is bound


def _save_on_remembered(request: _SaveRequest) -> SaveOutcome | None:
    """The save on top of a parent this process remembers verified, in one statement; None when there is
    no such parent or the statement finds the session elsewhere (then `_save_on_latest` reads and decides)."""
    if request.parent_id is None:
        return None
    remembered = states.get(request.session.pk, request.parent_id)
    if remembered is None or (request.sequence is not None and request.sequence != remembered.sequence + 1):
        return None
    parent = _parent_from(request.session, request.parent_id, remembered)
    try:
        return _write(request, parent, remembered.sequence + 1, _SAVE_ON_REMEMBERED_SQL)
    except (Unprocessable, PayloadTooLarge, ValidationFailed):
        # The parent is not verified against the database until the statement runs: a refusal is given
        # by the path that verifies it first (a tampered parent is an integrity failure, not a bad patch).
        return None


def _parent_from(session: SessionIdentity, parent_id: uuid.UUID, remembered: Remembered) -> Rebuilt:
    checkpoint = Checkpoint.of_columns(
        id=parent_id, session_id=session.pk, sequence=remembered.sequence, checksum=remembered.checksum
    )
    return Rebuilt(
        checkpoint=checkpoint,
        state=remembered.state,
        depth=remembered.depth,
        state_json=remembered.state_json,
        row_versions=remembered.row_versions,
    )


def _save_on_latest(request: _SaveRequest) -> SaveOutcome | None:
    """The save as a child of the session's latest checkpoint, without a lock; None when it is not that save
    (a fork, a sequence already taken) or the head moved meanwhile: the locked path decides then."""
    session = request.session
    path = load_path(session, checkpoint_id=request.parent_id, latest=request.parent_id is None)
    if request.parent_id is not None and request.parent_id != path.latest_id:
        return None
    next_sequence = path.last_sequence + 1
    if request.sequence is not None and request.sequence != next_sequence:
        return None
    if path.target is None and path.latest_id is not None:
        return None
    parent = rebuild_path(session, path) if path.target is not None else None
    if parent is None and request.state is None:
        return None
    return _write(request, parent, next_sequence, _SAVE_SQL)


def _last_row_version(path: Rebuilt | None) -> str:
    """ROW_VERSION_SQL of the last row of a rebuilt path (its target's own row)."""
    return path.row_versions.rsplit(";", 1)[-1] if path is not None else ""


def _write(request: _SaveRequest, parent: Rebuilt | None, next_sequence: int, statement: str) -> SaveOutcome | None:
    """Compute the new link on `parent` and store it with `statement`; None when the statement stored nothing."""
    session = request.session
    if parent is None:
        assert request.state is not None
        candidate = _Candidate(state=request.state, state_json=_checked_json(request.state, "state"))
    elif request.state is not None:
        candidate = _Candidate(state=request.state, state_json=_checked_json(request.state, "state"), parent=parent)
    else:
        candidate = _patched(parent, request.patch or [])
    computed = chain_checksum(
        parent_checksum=candidate.parent_checksum,
        sequence=next_sequence,
        node_id=request.node_id,
        metadata=request.metadata,
        state_json=candidate.state_json,
    )
    if request.checksum is not None and request.checksum != computed:
        raise _checksum_mismatch(sent=request.checksum, computed=computed)
    kind, body = _stored_body(candidate, request.patch)
    payload = encode_body(body, owner=owner_of(session))
    checkpoint = Checkpoint.of_columns(
        id=uuid.uuid4(),
        session_id=session.pk,
        sequence=next_sequence,
        parent_id=parent.checkpoint.pk if parent is not None else None,
        node_id=request.node_id,
        metadata=request.metadata,
        schema_version=CURRENT_SCHEMA_VERSION,
        kind=kind,
        payload=payload,
        checksum=computed,
        created_at=timezone.now(),
    )
    params: dict[str, Any] = {
        "session": session.pk,
        "tenant": session.tenant_id,
        "sequence": next_sequence,
        "id": checkpoint.pk,
        "parent": checkpoint.parent_id,
        "node": request.node_id,
        "metadata": dumps(request.metadata).decode(),
        "schema": CURRENT_SCHEMA_VERSION,
        "kind": kind,
        "payload": payload,
        "checksum": computed,
        "created_at": checkpoint.created_at,
        "parent_version": _last_row_version(parent),
    }
    try:
        rows = run(statement, params)
    except IntegrityError:
        if connection.in_atomic_block:
            raise
        return None  # the session went away meanwhile, say: the locked path tells what happened
    if not rows:
        return None
    # The event head as the save found the session: the events the agent had recorded before saving.
    checkpoint.event_version = rows[0][1]
    checkpoint.parent_sequence = parent.checkpoint.sequence if parent is not None else None  # type: ignore[attr-defined]
    # This link is verified by construction and its parent's path was verified: remember the state with the
    # row versions the next read of these rows will get from the database.
    parent_version = _last_row_version(parent).split("/", 1)[0] if parent is not None else "-"
    this_row = f"{rows[0][0]}/{parent_version}"
    states.put(
        session.pk,
        checkpoint.pk,
        state=candidate.state,
        state_json=candidate.state_json,
        row_versions=f"{parent.row_versions};{this_row}"
        if parent is not None and kind == CheckpointKind.DELTA
        else this_row,
        sequence=next_sequence,
        checksum=computed,
    )
    _announce(session, checkpoint)
    return SaveOutcome(checkpoint=checkpoint, created=True)


def _announce(session: AgentSession, checkpoint: Checkpoint) -> None:
    publish_on_commit(
        [session_group(session.pk)],
        {
            "type": "checkpoint.saved",
            "tenant": str(session.tenant_id),
            "session": session.session_id,
            "checkpoint": str(checkpoint.pk),
            "sequence": checkpoint.sequence,
            "parent": str(checkpoint.parent_id) if checkpoint.parent_id else None,
            "node_id": checkpoint.node_id,
            "kind": checkpoint.kind,
        },
    )


@transaction.atomic
def _save_locked(request: _SaveRequest) -> SaveOutcome:
    session, sequence, parent_id = request.session, request.sequence, request.parent_id
    head = _lock_head(session)
    if sequence is not None and sequence <= head.last_sequence:
        return _replay(
            session=session,
            head=head,
            sequence=sequence,
            node_id=request.node_id,
            metadata=request.metadata,
            state=request.state,
            patch=request.patch,
            parent_id=parent_id,
            checksum=request.checksum,
        )
    next_sequence = head.last_sequence + 1
    if sequence is not None and sequence != next_sequence:
        raise Conflict(
            f"The next sequence of this session is {next_sequence}, not {sequence}.",
            details={"sequence": sequence, "next_sequence": next_sequence, "latest": _summary(head.latest)},
        )
    candidate = _candidate(
        session=session,
        parent_id=parent_id if parent_id is not None else head.latest_id,
        state=request.state,
        patch=request.patch,
    )
    if parent_id is not None and sequence is None:
        twin = _stored_twin(request, candidate, head)
        if twin is not None:
            return SaveOutcome(checkpoint=twin, created=False)
    computed = chain_checksum(
        parent_checksum=candidate.parent_checksum,
        sequence=next_sequence,
        node_id=request.node_id,
        metadata=request.metadata,
        state_json=candidate.state_json,
    )
    if request.checksum is not None and request.checksum != computed:
        raise _checksum_mismatch(sent=request.checksum, computed=computed)

    kind, body = _stored_body(candidate, request.patch)
    parent = candidate.parent
    checkpoint = Checkpoint.objects.create(
        session=session,
        sequence=next_sequence,
        parent_id=parent.checkpoint.pk if parent is not None else None,
        node_id=request.node_id,
        metadata=request.metadata,
        schema_version=CURRENT_SCHEMA_VERSION,
        kind=kind,
        payload=encode_body(body, owner=owner_of(session)),
        checksum=computed,
        # The event head as this request read the session: the events the agent had recorded before saving.
        event_version=session.head_version,
    )
    checkpoint.parent_sequence = parent.checkpoint.sequence if parent is not None else None  # type: ignore[attr-defined]
    CheckpointHead.objects.filter(pk=head.pk).update(last_sequence=next_sequence, latest=checkpoint)
    _announce(session, checkpoint)
    return SaveOutcome(checkpoint=checkpoint, created=True)


def _stored_twin(request: _SaveRequest, candidate: _Candidate, head: CheckpointHead) -> Checkpoint | None:
    """The same save already stored: the session's latest checkpoint, if it is a child of the named parent
    with the same node, metadata and state.

    A retry whose first answer was lost — and whose Idempotency-Key record went with Redis — names the parent
    the first attempt was saved on, which is no longer the latest; without this it would become a second,
    identical branch. The first attempt is still the latest when nothing was saved after it (the agent waits
    for an answer before it saves again). An older child with the same content is not a retry: the agent went
    back to its parent and re-ran the node (time travel), a fork, which must become the latest as any other.
    """
    if head.latest_id is None:
        return None
    latest = Checkpoint.objects.filter(
        pk=head.latest_id, session=request.session, parent_id=request.parent_id, node_id=request.node_id
    ).first()
    if latest is None:
        return None
    same = chain_checksum(
        parent_checksum=candidate.parent_checksum,
        sequence=latest.sequence,
        node_id=request.node_id,
        metadata=request.metadata,
        state_json=candidate.state_json,
    )
    if same != latest.checksum:
        return None
    if request.checksum is not None and request.checksum != latest.checksum:
        raise _checksum_mismatch(sent=request.checksum, computed=latest.checksum)
    return latest


@dataclass(frozen=True)
class RetentionReport:
    """What a retention run removed (or, in a dry run, would remove)."""

    dry_run: bool
    cutoff: datetime
    keep_latest: int
    checkpoints_deleted: int
    sessions_affected: int
    # Kept checkpoints that became chain starts because their parent was removed (deltas rewritten as full).
    checkpoints_rewritten: int
    # Sessions left (partly) as they were because a kept checkpoint's chain failed verification.
    broken_sessions: tuple[str, ...] = field(default=())


def _prune_session(session: AgentSession, policy: Policy, *, batch_size: int, wait: bool) -> SessionOutcome:
    total = SessionOutcome()
    while True:
        step = prune_step(session, policy, limit=batch_size, wait=wait)
        if step is None:
            return total
        total.deleted += step.deleted
        total.rewritten += step.rewritten
        if step.busy or step.broken:
            total.busy, total.broken = step.busy, step.broken
            return total


def apply_checkpoint_retention(*, dry_run: bool, now: datetime | None = None, batch_size: int = 500) -> RetentionReport:
    """Remove checkpoints older than CHECKPOINT_RETENTION_DAYS, keeping each session's latest
    CHECKPOINT_KEEP_LATEST (by sequence), and report how many were removed from how many sessions.

    Every kept checkpoint stays readable and verifiable: one whose parent goes becomes a chain start first
    (see `checkpoints_app.retention`). Not one transaction: each step removes at most `batch_size` rows of
    one session under that session's save lock, so agents keep saving meanwhile, an interrupted run leaves a
    consistent state, and several runs at once remove each row once. `dry_run` changes nothing and reports
    the same counts a run would. A session where a kept checkpoint's chain fails verification is left as it
    is (tamper evidence is not destroyed) and listed in `broken_sessions`. ValidationFailed for a batch_size
    below 1.
    """
    if batch_size < 1:
        raise ValidationFailed("batch_size must be at least 1.")
    policy = Policy(
        cutoff=(now or timezone.now()) - timedelta(days=settings.CHECKPOINT_RETENTION_DAYS),
        keep_latest=settings.CHECKPOINT_KEEP_LATEST,
    )
    deleted: dict[uuid.UUID, int] = {}
    rewritten = 0
    busy: list[AgentSession] = []
    broken: list[str] = []

    def tally(session: AgentSession, outcome: SessionOutcome) -> None:
        nonlocal rewritten
        if outcome.deleted:
            deleted[session.pk] = deleted.get(session.pk, 0) + outcome.deleted
        rewritten += outcome.rewritten
        if outcome.broken is not None:
            broken.append(str(session.pk))

    after: uuid.UUID | None = None
    while ids := sessions_with_expired(policy, after=after, limit=batch_size):
        after = ids[-1]
        sessions = AgentSession.objects.in_bulk(ids)
        for pk in ids:
            session = sessions.get(pk)
            if session is None:  # deleted since (its checkpoints went with it)
                continue
            if dry_run:
                tally(session, plan_session(session, policy))
                continue
            outcome = _prune_session(session, policy, batch_size=batch_size, wait=False)
            tally(session, outcome)
            if outcome.busy:
                busy.append(session)
    for session in busy:  # held by another worker or a save a moment ago: wait for the lock this time
        tally(session, _prune_session(session, policy, batch_size=batch_size, wait=True))
    return RetentionReport(
        dry_run=dry_run,
        cutoff=policy.cutoff,
        keep_latest=policy.keep_latest,
        checkpoints_deleted=sum(deleted.values()),
        sessions_affected=len(deleted),
        checkpoints_rewritten=rewritten,
        broken_sessions=tuple(broken),
    )
