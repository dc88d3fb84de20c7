"""Rebuilding a checkpoint's state from storage, verifying every link on the way.

A checkpoint's state is its nearest full snapshot with the deltas after it applied in order. One recursive
query fetches that path (at most CHECKPOINT_FULL_EVERY rows when the settings have not changed since); each
link's checksum is recomputed from the rebuilt state and compared with the stored one. The first link that
fails raises IntegrityFailure naming it, so a wrong state is never returned.

A chain starts at a checkpoint without a parent: the session's first, or a full snapshot whose parent
retention removed. The latter's checksum was computed over that parent's checksum, which the row keeps
(`pruned_parent_checksum`), so its link is still checked against it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from checkpoints_app.models import Checkpoint, CheckpointKind
from checkpoints_app.patching import PatchError, apply_patch
from checkpoints_app.storage import Owner, chain_checksum, read_body
from memory_admin.codec import canonical_json
from memory_admin.errors import IntegrityFailure, NotFound
from sessions_app.models import AgentSession

# A path longer than this is a cycle or a corrupt parent link, whatever CHECKPOINT_FULL_EVERY was.
MAX_PATH = 10_000

# One round trip per read: the anchor picks the target (by id, by sequence, or the head's latest), the
# recursion walks parent links back to the nearest full snapshot, within the session only.
_PATH_SQL = """
WITH RECURSIVE path AS (
    SELECT id, parent_id, kind, 0 AS depth
    FROM checkpoints_app_checkpoint
    WHERE session_id = %(session)s AND {anchor}
  UNION ALL
    SELECT c.id, c.parent_id, c.kind, path.depth + 1
    FROM checkpoints_app_checkpoint c
    JOIN path ON c.id = path.parent_id
    WHERE path.kind <> 'full' AND c.session_id = %(session)s AND path.depth < %(limit)s
)
SELECT c.*,
    CASE WHEN c.parent_id IS NULL THEN NULLIF(c.pruned_parent_checksum, '') ELSE parent.checksum END
        AS parent_checksum,
    parent.sequence AS parent_sequence, path.depth AS depth
FROM path
JOIN checkpoints_app_checkpoint c ON c.id = path.id
LEFT JOIN checkpoints_app_checkpoint parent ON parent.id = c.parent_id
ORDER BY path.depth DESC
"""
_ANCHORS = {
    "id": "id = %(target)s",
    "sequence": "sequence = %(target)s",
    "latest": "id = (SELECT latest_id FROM checkpoints_app_checkpointhead WHERE session_id = %(session)s)",
}


def owner_of(session: AgentSession) -> Owner:
    return Owner(tenant_id=session.tenant_id, user_id=session.user_id)


def broken(link: Checkpoint, reason: str) -> IntegrityFailure:
    return IntegrityFailure(
        f"Checkpoint {link.sequence} failed verification: {reason}.",
        details={"checkpoint_id": str(link.pk), "sequence": link.sequence, "reason": reason},
    )


def max_state_bytes() -> int:
    value: int = settings.CHECKPOINT_MAX_STATE_BYTES
    return value


def next_state(link: Checkpoint, previous: dict[str, Any] | None, owner: Owner) -> dict[str, Any]:
    """The state stored in `link`, given its parent's state (changed in place for a delta)."""
    try:
        body = read_body(link.payload, kind=link.kind, schema_version=link.schema_version, owner=owner)
    except ValueError as exc:
        raise broken(link, str(exc)) from None
    if body.state is not None:
        return body.state
    if previous is None:
        raise broken(link, "a delta has no parent state to apply to")
    try:
        return apply_patch(previous, body.patch or [], max_bytes=max_state_bytes())
    except PatchError as exc:
        raise broken(link, f"its stored patch {exc}") from None


def anchor_of(link: Checkpoint) -> str | None:
    """The parent checksum a chain start's link commits to: none, or that of the parent retention removed."""
    return link.pruned_parent_checksum or None


def check_link(link: Checkpoint, state: dict[str, Any], parent_checksum: str | None) -> None:
    try:
        state_json = canonical_json(state)
        expected = chain_checksum(
            schema_version=link.schema_version,
            parent_checksum=parent_checksum,
            sequence=link.sequence,
            node_id=link.node_id,
            metadata=link.metadata,
            state_json=state_json,
        )
    except ValueError as exc:
        raise broken(link, str(exc)) from None
    if expected != link.checksum:
        raise broken(link, "its checksum does not match its content and its parent's checksum")


@dataclass
class Rebuilt:
    checkpoint: Checkpoint
    state: dict[str, Any]
    # Deltas applied after the nearest full snapshot: a save decides from this when to store a full one.
    depth: int


def rebuild(*, session: AgentSession, checkpoint_id: object = None, sequence: int | None = None) -> Rebuilt:
    """The checkpoint (by id, by sequence, or else the session's latest) and its verified state.

    NotFound when there is no such checkpoint in this session.
    """
    missing: dict[str, Any]
    if checkpoint_id is not None:
        anchor, target, missing = "id", checkpoint_id, {"checkpoint_id": str(checkpoint_id)}
    elif sequence is not None:
        anchor, target, missing = "sequence", sequence, {"sequence": sequence}
    else:
        anchor, target, missing = "latest", None, {"latest": True}
    sql = _PATH_SQL.format(anchor=_ANCHORS[anchor])
    path = list(Checkpoint.objects.raw(sql, {"target": target, "session": session.pk, "limit": MAX_PATH}))
    if not path:
        raise NotFound("No such checkpoint in this session.", details=missing)
    if path[0].kind != CheckpointKind.FULL:
        raise broken(path[0], "its chain does not reach a full snapshot (a parent is missing)")
    owner = owner_of(session)
    state: dict[str, Any] | None = None
    for link in path:
        state = next_state(link, state, owner)
        check_link(link, state, getattr(link, "parent_checksum", None))
    assert state is not None
    return Rebuilt(checkpoint=path[-1], state=state, depth=len(path) - 1)


@dataclass
class Verification:
    valid: bool
    checked: int
    first_bad_link: dict[str, Any] | None


def _children_counts(session: AgentSession) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for parent_id in Checkpoint.objects.filter(session=session, parent__isnull=False).values_list(
        "parent_id", flat=True
    ):
        counts[parent_id] = counts.get(parent_id, 0) + 1
    return counts


def _in_sequence(session: AgentSession) -> Iterator[Checkpoint]:
    return Checkpoint.objects.filter(session=session).order_by("sequence").iterator(chunk_size=200)


def verify_session(session: AgentSession) -> Verification:
    """Recompute every link of the session's checkpoints, oldest first, and report the first that fails.

    Parents always have lower sequences than their children, so one pass in sequence order rebuilds every
    state; a state is kept only until its last child has used it, so memory stays at one state per open
    branch.
    """
    owner = owner_of(session)
    waiting = _children_counts(session)
    states: dict[Any, dict[str, Any]] = {}
    checksums: dict[Any, str] = {}
    checked = 0
    for link in _in_sequence(session):
        try:
            previous = None
            if link.parent_id is not None:
                if link.parent_id not in checksums:
                    raise broken(link, "its parent is missing or comes after it")
                waiting[link.parent_id] -= 1
                if link.kind == CheckpointKind.DELTA:
                    previous = states.get(link.parent_id)
                    if waiting[link.parent_id] > 0:
                        previous = copy.deepcopy(previous)  # a later sibling needs the parent's state too
                if waiting[link.parent_id] == 0:
                    states.pop(link.parent_id, None)
            state = next_state(link, previous, owner)
            parent_checksum = checksums[link.parent_id] if link.parent_id is not None else anchor_of(link)
            check_link(link, state, parent_checksum)
        except IntegrityFailure as failure:
            return Verification(valid=False, checked=checked, first_bad_link=failure.details)
        checksums[link.pk] = link.checksum
        if waiting.get(link.pk, 0) > 0:
            states[link.pk] = state
        checked += 1
    return Verification(valid=True, checked=checked, first_bad_link=None)
