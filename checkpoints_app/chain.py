"""Rebuilding a checkpoint's state from storage, verifying every link on the way.

A checkpoint's state is its nearest full snapshot with the deltas after it applied in order. One recursive
query fetches that path (at most CHECKPOINT_FULL_EVERY rows when the settings have not changed since); each
link's checksum is recomputed from the rebuilt state and compared with the stored one. The first link that
fails raises IntegrityFailure naming it, so a wrong state is never returned.

A verified state is remembered per process under the versions of the path's rows it was verified from
(`checkpoints_app.cache`, ROW_VERSION_SQL): when a later read or save finds the same row versions, their
verification has already succeeded and the state is known; a row edited since is a new row version, so
it is rebuilt and verified again, and the first bad link is named as before. An agent's next
save or read therefore rarely decodes or recomputes anything but the link it adds.

A chain starts at a checkpoint without a parent: the session's first, or a full snapshot whose parent
retention removed. The latter's checksum was computed over that parent's checksum, which the row keeps
(`pruned_parent_checksum`), so its link is still checked against it.

The session's checkpoint head names its newest checkpoint: a save adds the checkpoint and moves the head in one
transaction, and retention never removes the newest. A head that does not (a session rolled back in SQL) is an
IntegrityFailure too: `verify` reports it, and a read of, or a save on, the latest refuses.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.db import connection

from checkpoints_app.cache import states
from checkpoints_app.models import Checkpoint, CheckpointKind
from checkpoints_app.patching import PatchError, apply_copying
from checkpoints_app.storage import Owner, chain_checksum, read_body
from memory_admin.codec import canonical_json
from memory_admin.errors import IntegrityFailure, NotFound
from memory_admin.sql import run
from sessions_app.identity import SessionIdentity
from sessions_app.models import AgentSession

# A path longer than this is a cycle or a corrupt parent link, whatever CHECKPOINT_FULL_EVERY was.
MAX_PATH = 10_000

# The walk from a target (by id, by sequence, or the head's latest) back along parent links to the nearest
# full snapshot, within the session only.
WALK_SQL = """
WITH RECURSIVE path AS (
    SELECT id, parent_id, kind, 0 AS depth
    FROM checkpoints_app_checkpoint
    WHERE session_id = %(session)s AND {anchor}
  UNION ALL
    SELECT c.id, c.parent_id, c.kind, path.depth + 1
    FROM checkpoints_app_checkpoint c
    JOIN path ON c.id = path.parent_id
    WHERE path.kind <> 'full' AND c.session_id = %(session)s AND path.depth < %(limit)s
)"""
# The checksum a link commits to: its parent's, or the one retention kept for a removed parent.
_PARENT_CHECKSUM = "CASE WHEN c.parent_id IS NULL THEN NULLIF(c.pruned_parent_checksum, '') ELSE parent.checksum END"
_COLUMNS = f"""c.id, c.sequence, c.parent_id, c.node_id, c.metadata::text, c.schema_version, c.kind, c.checksum,
    c.event_version, c.created_at, c.pruned_parent_checksum, c.pruned_parent_sequence,
    {_PARENT_CHECKSUM} AS parent_checksum, parent.sequence AS parent_sequence"""
# A digest of every column verifying a link reads, per row (the dashboard's chain status fingerprints with it).
ROW_HASH_SQL = f"""sha256(convert_to(concat(
    length(c.kind), ':', c.kind, ':', c.schema_version, ':', c.sequence, ':', length(c.node_id), ':', c.node_id,
    ':', length(c.metadata::text), ':', c.metadata::text, ':', length(c.checksum), ':', c.checksum, ':',
    coalesce(length({_PARENT_CHECKSUM})::text || ':' || {_PARENT_CHECKSUM}, '-'), ':', length(c.payload), ':'
), 'UTF8') || c.payload)"""
# Which stored version of a row, and of its parent row, a link was verified from: the tuple's place and the
# transaction that wrote it. Any UPDATE of a row, in SQL or otherwise, writes a new tuple (a new place, and in
# another transaction a new xmin), so a memo keyed by these is never taken for rows edited since; reading
# them touches no payload (no TOAST, no hashing), which is what makes a remembered read or save cheap.
ROW_VERSION_SQL = (
    "c.ctid::text || '@' || c.xmin::text || '/' || coalesce(parent.ctid::text || '@' || parent.xmin::text, '-')"
)
# One round trip per read or save: the session's checkpoint head (a save needs it), the target row without
# its payload, and the versions of the path's rows, oldest first. Without such a checkpoint: the head only.
# No row at all when the session is not (or no longer) the tenant's and visible: a reader may know the session
# from an earlier request only (sessions_app.identity).
_HEAD_SQL = f"""{WALK_SQL},
hashes AS (
    SELECT string_agg({ROW_VERSION_SQL}, ';' ORDER BY path.depth DESC) AS row_versions,
        bool_or(path.kind = 'full') AS complete
    FROM path
    JOIN checkpoints_app_checkpoint c ON c.id = path.id
    LEFT JOIN checkpoints_app_checkpoint parent ON parent.id = c.parent_id
), target AS (
    SELECT {_COLUMNS}
    FROM checkpoints_app_checkpoint c
    LEFT JOIN checkpoints_app_checkpoint parent ON parent.id = c.parent_id
    WHERE c.id = (SELECT id FROM path WHERE depth = 0)
)
SELECT head.last_sequence, head.latest_id, hashes.row_versions, hashes.complete, target.*
FROM (
    SELECT 1 FROM sessions_app_agentsession
    WHERE id = %(session)s AND tenant_id = %(tenant)s AND erased_at IS NULL
) AS one
LEFT JOIN checkpoints_app_checkpointhead head ON head.session_id = %(session)s
LEFT JOIN hashes ON true
LEFT JOIN target ON true
"""  # noqa: S608 - constants of this module; every value is bound
# The whole path with payloads, oldest first: for a rebuild.
_PATH_SQL = f"""{WALK_SQL}
SELECT {_COLUMNS}, {ROW_VERSION_SQL}, c.payload
FROM path
JOIN checkpoints_app_checkpoint c ON c.id = path.id
LEFT JOIN checkpoints_app_checkpoint parent ON parent.id = c.parent_id
ORDER BY path.depth DESC
"""  # noqa: S608 - constants of this module; every value is bound
_ANCHORS = {
    "id": "id = %(target)s",
    "sequence": "sequence = %(target)s",
    "latest": "id = (SELECT latest_id FROM checkpoints_app_checkpointhead WHERE session_id = %(session)s)",
}
# Every checkpoint of a session, oldest first, each with how many children it has, and the session's checkpoint
# head on every row: one statement, so one snapshot. A save (which adds its row and moves the head in one
# transaction) or a retention step committing while verification reads is in all of it or in none of it.
_SESSION_SQL = f"""
SELECT (SELECT last_sequence FROM checkpoints_app_checkpointhead WHERE session_id = %(session)s),
    (SELECT latest_id FROM checkpoints_app_checkpointhead WHERE session_id = %(session)s),
    (SELECT count(*) FROM checkpoints_app_checkpoint child WHERE child.parent_id = c.id), {_COLUMNS}, c.payload
FROM checkpoints_app_checkpoint c
LEFT JOIN checkpoints_app_checkpoint parent ON parent.id = c.parent_id
WHERE c.session_id = %(session)s
ORDER BY c.sequence
"""  # noqa: S608 - constants of this module; every value is bound
# The head of a session without checkpoints, if it has one: none when checkpoints exist by now (a first save
# committed after the statement above found none), so only a head whose checkpoints were all deleted shows.
_BARE_HEAD_SQL = """
SELECT last_sequence, latest_id FROM checkpoints_app_checkpointhead
WHERE session_id = %(session)s
    AND NOT EXISTS (SELECT 1 FROM checkpoints_app_checkpoint WHERE session_id = %(session)s)
"""


class StoredLink(Protocol):
    """What verifying and rebuilding one link reads of a row (a Checkpoint, or a `Link` from the path query)."""

    @property
    def pk(self) -> Any: ...
    @property
    def sequence(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def schema_version(self) -> int: ...
    @property
    def payload(self) -> Any: ...
    @property
    def node_id(self) -> str: ...
    @property
    def metadata(self) -> Any: ...
    @property
    def checksum(self) -> str: ...
    @property
    def pruned_parent_checksum(self) -> str: ...


@dataclass
class Link:
    """One row of a rebuild path, as the path query returns it (no model instance per row)."""

    pk: Any
    sequence: int
    parent_id: Any
    node_id: str
    # As PostgreSQL prints the jsonb: parsed only when this link is verified or returned.
    metadata_text: str
    schema_version: int
    kind: str
    payload: bytes
    checksum: str
    event_version: int
    created_at: datetime
    pruned_parent_checksum: str
    pruned_parent_sequence: int | None
    # The checksum this link commits to: its parent's, or the one retention kept for a removed parent.
    parent_checksum: str | None
    parent_sequence: int | None
    # ROW_VERSION_SQL of this row (path queries only).
    row_version: str = ""

    @property
    def metadata(self) -> Any:
        return json.loads(self.metadata_text)

    def as_checkpoint(self, session: SessionIdentity) -> Checkpoint:
        checkpoint = Checkpoint.of_columns(
            id=self.pk,
            session_id=session.pk,
            sequence=self.sequence,
            parent_id=self.parent_id,
            node_id=self.node_id,
            metadata=self.metadata,
            schema_version=self.schema_version,
            kind=self.kind,
            payload=self.payload,
            checksum=self.checksum,
            event_version=self.event_version,
            created_at=self.created_at,
            pruned_parent_checksum=self.pruned_parent_checksum,
            pruned_parent_sequence=self.pruned_parent_sequence,
        )
        checkpoint.parent_sequence = self.parent_sequence  # type: ignore[attr-defined]
        return checkpoint


@dataclass(frozen=True)
class Path:
    """The session's checkpoint head, and the target checkpoint (None when there is no such checkpoint) with
    the versions of the rows from its nearest full snapshot to it (`complete` when that snapshot was found)."""

    last_sequence: int
    latest_id: Any
    target: Link | None
    row_versions: str
    complete: bool


def _params(session: SessionIdentity, target: Any) -> dict[str, Any]:
    return {"target": target, "session": session.pk, "tenant": session.tenant_id, "limit": MAX_PATH}


class SessionNotFound(NotFound):
    """The session of a read is not (or no longer) the tenant's and visible."""


def load_path(
    session: SessionIdentity, *, checkpoint_id: object = None, sequence: int | None = None, latest: bool = False
) -> Path:
    """One query: the head, and the checkpoint by id, by sequence or (latest=True, or neither) the latest.
    IntegrityFailure when the latest is asked for and the head's latest is not its newest (`head_broken`)."""
    if checkpoint_id is not None:
        anchor, target = "id", checkpoint_id
    elif sequence is not None:
        anchor, target = "sequence", sequence
    else:
        anchor, target = "latest", None
    rows = run(_HEAD_SQL.format(anchor=_ANCHORS[anchor]), _params(session, target))
    if not rows:
        raise SessionNotFound("No such session.", details={"session_id": session.session_id})
    row = rows[0]
    last_sequence, latest_id, row_versions, complete = row[:4]
    path = Path(
        last_sequence=last_sequence or 0,
        latest_id=latest_id,
        target=_link(row[4:], payload=b"") if row[4] is not None else None,
        row_versions=row_versions or "",
        complete=bool(complete),
    )
    if anchor == "latest":
        _check_latest(path)
    return path


def _links(session: SessionIdentity, checkpoint_id: object) -> list[Link]:
    """The rows from the checkpoint's nearest full snapshot to it, oldest first, with their payloads."""
    rows = run(_PATH_SQL.format(anchor=_ANCHORS["id"]), _params(session, checkpoint_id))
    return [_link(row[:-2], payload=bytes(row[-1]), row_version=row[-2]) for row in rows]


def _link(row: tuple[Any, ...], *, payload: bytes, row_version: str = "") -> Link:
    (pk, sequence, parent_id, node_id, metadata, schema_version, kind, checksum, event_version, created_at,
     pruned_checksum, pruned_sequence, parent_checksum, parent_sequence) = row  # fmt: skip
    return Link(
        pk=pk,
        sequence=sequence,
        parent_id=parent_id,
        node_id=node_id,
        metadata_text=metadata,
        schema_version=schema_version,
        kind=kind,
        payload=payload,
        checksum=checksum,
        event_version=event_version,
        created_at=created_at,
        pruned_parent_checksum=pruned_checksum,
        pruned_parent_sequence=pruned_sequence,
        parent_checksum=parent_checksum,
        parent_sequence=parent_sequence,
        row_version=row_version,
    )


def owner_of(session: SessionIdentity) -> Owner:
    return Owner(tenant_id=session.tenant_id, user_id=session.user_id)


def broken(link: StoredLink, reason: str) -> IntegrityFailure:
    return IntegrityFailure(
        f"Checkpoint {link.sequence} failed verification: {reason}.",
        details={"checkpoint_id": str(link.pk), "sequence": link.sequence, "reason": reason},
    )


def max_state_bytes() -> int:
    value: int = settings.CHECKPOINT_MAX_STATE_BYTES
    return value


# What a stored delta's `copy` operations may add when it is replayed. It was held to the limit of its day
# when saved, and a lowered CHECKPOINT_MAX_STATE_BYTES must not turn it into a broken link; but a delta edited
# in SQL could copy the whole state into itself over and over, doubling it each time, so there is a ceiling,
# far above any state a limit would sensibly allow (the default is 4 MiB).
REPLAY_COPY_BYTES = 256 * 1_048_576


def replay_copy_bytes() -> int:
    return max(REPLAY_COPY_BYTES, max_state_bytes())


def next_state(link: StoredLink, previous: dict[str, Any] | None, owner: Owner) -> dict[str, Any]:
    """The state stored in `link`, given its parent's state (which is left unchanged)."""
    try:
        body = read_body(link.payload, kind=link.kind, schema_version=link.schema_version, owner=owner)
    except ValueError as exc:
        raise broken(link, str(exc)) from None
    if body.state is not None:
        return body.state
    if previous is None:
        raise broken(link, "a delta has no parent state to apply to")
    try:
        # Its `test` operations were judged when it was saved: a read replays only what changes the state.
        return apply_copying(previous, body.patch or [], max_bytes=replay_copy_bytes(), tests=False)
    except PatchError as exc:
        raise broken(link, f"its stored patch {exc}") from None


def anchor_of(link: StoredLink) -> str | None:
    """The parent checksum a chain start's link commits to: none, or that of the parent retention removed."""
    return link.pruned_parent_checksum or None


def check_link(
    link: StoredLink, state: dict[str, Any], parent_checksum: str | None, *, state_json: bytes | None = None
) -> bytes:
    """IntegrityFailure unless `link`'s checksum is that of `state` after `parent_checksum`; the state's
    canonical JSON (`state_json` when the caller has it already)."""
    try:
        if state_json is None:
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
    return state_json


@dataclass
class Rebuilt:
    checkpoint: Checkpoint
    state: dict[str, Any]
    # Deltas applied after the nearest full snapshot: a save decides from this when to store a full one.
    depth: int
    # canonical_json(state), as verified against the checksum; the versions of the rows it was rebuilt from.
    state_json: bytes = b""
    row_versions: str = ""


def rebuild_path(session: SessionIdentity, path: Path) -> Rebuilt:
    """The verified state of the path's target, every link from its full snapshot verified — now, or before
    on exactly the same rows (see the module docstring). IntegrityFailure names the first bad link."""
    target = path.target
    assert target is not None
    remembered = states.get(session.pk, target.pk, path.row_versions) if path.complete else None
    if remembered is not None:
        return Rebuilt(
            checkpoint=target.as_checkpoint(session),
            state=remembered.state,
            depth=remembered.depth,
            state_json=remembered.state_json,
            row_versions=path.row_versions,
        )
    links = _links(session, target.pk)
    if not links:
        raise NotFound("No such checkpoint in this session.", details={"checkpoint_id": str(target.pk)})
    if links[0].kind != CheckpointKind.FULL:
        raise broken(links[0], "its chain does not reach a full snapshot (a parent is missing)")
    owner = owner_of(session)
    state: dict[str, Any] | None = None
    state_json = b""
    for link in links:
        state = next_state(link, state, owner)
        state_json = check_link(link, state, link.parent_checksum)
    assert state is not None
    row_versions = ";".join(link.row_version for link in links)
    states.put(
        session.pk,
        links[-1].pk,
        state=state,
        state_json=state_json,
        row_versions=row_versions,
        sequence=links[-1].sequence,
        checksum=links[-1].checksum,
    )
    return Rebuilt(
        checkpoint=links[-1].as_checkpoint(session),
        state=state,
        depth=len(links) - 1,
        state_json=state_json,
        row_versions=row_versions,
    )


def rebuild(*, session: SessionIdentity, checkpoint_id: object = None, sequence: int | None = None) -> Rebuilt:
    """The checkpoint (by id, by sequence, or else the session's latest) and its verified state.

    NotFound when there is no such checkpoint in this session. The state may be shared with other readers:
    do not change it (patch it with `patching.apply_copying`).
    """
    missing: dict[str, Any]
    if checkpoint_id is not None:
        missing = {"checkpoint_id": str(checkpoint_id)}
    elif sequence is not None:
        missing = {"sequence": sequence}
    else:
        missing = {"latest": True}
    path = load_path(session, checkpoint_id=checkpoint_id, sequence=sequence)
    if path.target is None:
        raise NotFound("No such checkpoint in this session.", details=missing)
    return rebuild_path(session, path)


@dataclass
class Verification:
    valid: bool
    checked: int
    first_bad_link: dict[str, Any] | None
    # Where verification starts: the oldest kept checkpoint ({checkpoint_id, sequence, anchored}); `anchored`
    # when retention removed its parent and its link is checked against the parent checksum it keeps.
    verified_from: dict[str, Any] | None = None
    # Sequences retention removed, as [first, last] ranges (sequences are otherwise gap-free).
    removed_by_retention: list[list[int]] = field(default_factory=list)
    # Kept checkpoints whose parent retention removed: {checkpoint_id, sequence, removed_parent_sequence}.
    retention_anchors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Stored:
    """A session's checkpoints as one statement read them (`_SESSION_SQL`): its checkpoint head (None when it
    has none), and its checkpoints oldest first with how many children each has, streamed."""

    last_sequence: int | None
    latest_id: Any
    links: Iterator[tuple[Link, int]]


# Rows fetched per round trip while streaming a session's checkpoints (each holds a payload).
_CHUNK = 200


def _streamed(sql: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    # A server-side cursor, as QuerySet.iterator() uses: the rows are read from the statement's one snapshot
    # however long the reader takes, without holding them all in memory.
    chunked = not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    with connection.chunked_cursor() if chunked else connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(_CHUNK):
            yield from rows


def stored_checkpoints(session: AgentSession) -> Stored:
    """The session's checkpoint head and checkpoints, all of one snapshot (see `_SESSION_SQL`)."""
    params = {"session": session.pk}
    rows = _streamed(_SESSION_SQL, params)
    first = next(rows, None)
    if first is None:
        bare = run(_BARE_HEAD_SQL, params)
        return Stored(last_sequence=bare[0][0] if bare else None, latest_id=None, links=iter(()))
    links = ((_link(row[3:-1], payload=bytes(row[-1])), row[2]) for row in itertools.chain([first], rows))
    return Stored(last_sequence=first[0], latest_id=first[1], links=links)


def head_broken(*, last_sequence: int, checkpoint_id: Any, reason: str) -> IntegrityFailure:
    """The session's checkpoint head does not name its newest checkpoint. A save adds its checkpoint and moves
    the head to it in one transaction, and retention never removes the newest, so only an edit behind the
    service's back (a rollback in SQL) parts them. Named as the link of the newest checkpoint (`checkpoint_id`
    None when it is missing)."""
    return IntegrityFailure(
        f"The session's checkpoint head failed verification: {reason}.",
        details={
            "checkpoint_id": str(checkpoint_id) if checkpoint_id is not None else None,
            "sequence": last_sequence,
            "reason": reason,
        },
    )


def _check_latest(path: Path) -> None:
    """IntegrityFailure unless the head's latest checkpoint, which the path leads to, is its newest."""
    target = path.target
    if target is None and path.last_sequence == 0:
        return  # no checkpoints yet
    if target is None:
        reason = f"it names no latest checkpoint, though {path.last_sequence} were saved"
        raise head_broken(last_sequence=path.last_sequence, checkpoint_id=None, reason=reason)
    if target.sequence != path.last_sequence:
        reason = f"its latest checkpoint is sequence {target.sequence}, not the newest ({path.last_sequence})"
        raise head_broken(last_sequence=path.last_sequence, checkpoint_id=None, reason=reason)


def _check_head(stored: Stored, newest: Link | None) -> None:
    """IntegrityFailure unless the head names the newest of the checkpoints read with it (see `head_broken`)."""
    last_sequence = stored.last_sequence
    if last_sequence is None:
        if newest is not None:
            reason = "the session has checkpoints but no checkpoint head"
            raise head_broken(last_sequence=newest.sequence, checkpoint_id=newest.pk, reason=reason)
        return
    if newest is not None and newest.sequence > last_sequence:
        reason = f"checkpoint {newest.sequence} is newer than the head's last sequence ({last_sequence})"
        raise head_broken(last_sequence=newest.sequence, checkpoint_id=newest.pk, reason=reason)
    if last_sequence == 0:
        return
    if newest is None or newest.sequence != last_sequence:
        reason = f"the newest checkpoint ({last_sequence}) is missing; retention never removes the newest"
        raise head_broken(last_sequence=last_sequence, checkpoint_id=None, reason=reason)
    if stored.latest_id != newest.pk:
        reason = f"its latest checkpoint is not the newest ({last_sequence})"
        raise head_broken(last_sequence=last_sequence, checkpoint_id=newest.pk, reason=reason)


def _gaps(sequences: list[int], last_sequence: int) -> list[list[int]]:
    """The [first, last] ranges of 1..last_sequence missing from the ascending `sequences`."""
    gaps: list[list[int]] = []
    expected = 1
    for sequence in [*sequences, last_sequence + 1]:
        if sequence > expected:
            gaps.append([expected, sequence - 1])
        expected = max(expected, sequence + 1)
    return gaps


def verify_session(session: AgentSession) -> Verification:
    """Recompute every link of the session's checkpoints, oldest first, and report the first that fails,
    with what retention removed and where the kept chain starts. The head must name the newest checkpoint
    (`head_broken`): a session rolled back in SQL is not valid.

    Everything is read in one statement (`_SESSION_SQL`), so a save committing meanwhile is either verified
    with the rest or not seen at all. Parents always have lower sequences than their children, so one pass in
    sequence order rebuilds every state; a state is kept only until its last child has used it, so memory
    stays at one state per open branch.
    """
    owner = owner_of(session)
    stored = stored_checkpoints(session)
    waiting: dict[Any, int] = {}
    states_of: dict[Any, dict[str, Any]] = {}
    checksums: dict[Any, str] = {}
    checked = 0
    sequences: list[int] = []
    anchors: list[dict[str, Any]] = []
    verified_from: dict[str, Any] | None = None
    newest: Link | None = None
    failure: IntegrityFailure | None = None
    for link, children in stored.links:
        newest = link
        sequences.append(link.sequence)
        if verified_from is None:
            verified_from = {
                "checkpoint_id": str(link.pk),
                "sequence": link.sequence,
                "anchored": link.pruned_parent_sequence is not None,
            }
        if link.pruned_parent_sequence is not None:
            anchors.append(
                {
                    "checkpoint_id": str(link.pk),
                    "sequence": link.sequence,
                    "removed_parent_sequence": link.pruned_parent_sequence,
                }
            )
        if failure is not None:
            continue
        try:
            previous = None
            if link.parent_id is not None:
                if link.parent_id not in checksums:
                    raise broken(link, "its parent is missing or comes after it")
                if link.kind == CheckpointKind.DELTA:
                    previous = states_of.get(link.parent_id)
                waiting[link.parent_id] = waiting.get(link.parent_id, 0) - 1
                if waiting[link.parent_id] <= 0:
                    states_of.pop(link.parent_id, None)
            state = next_state(link, previous, owner)
            parent_checksum = checksums[link.parent_id] if link.parent_id is not None else anchor_of(link)
            check_link(link, state, parent_checksum)
        except IntegrityFailure as exc:
            failure = exc
            continue
        checksums[link.pk] = link.checksum
        if children > 0:
            waiting[link.pk] = children
            states_of[link.pk] = state
        checked += 1
    if failure is None:
        try:
            _check_head(stored, newest)
        except IntegrityFailure as exc:
            failure = exc
    return Verification(
        valid=failure is None,
        checked=checked,
        first_bad_link=failure.details if failure is not None else None,
        verified_from=verified_from,
        # Up to the newest checkpoint read: retention never removes the newest, so a gap after it is not its doing.
        removed_by_retention=_gaps(sequences, sequences[-1] if sequences else 0),
        retention_anchors=anchors,
    )
