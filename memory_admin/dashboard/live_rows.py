"""Rows rendered on the server for the pages the live socket updates (the user page, the API keys page, the
sessions list): the page swaps a row by its id, so the same row arriving twice (a catch-up overlapping a live
message) changes nothing.

Published messages carry ids only; these functions read the rows again, scoped to the tenant of the group the
message came from, decide whether the watching page shows them, and render them with the page's own row
templates. They run in the consumer's thread pool (synchronous ORM).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from compliance_app.keys import subject_of
from compliance_app.models import ErasureRequest
from memories_app.models import Memory, PromotionJob, Scope, UserProfile
from memory_admin.dashboard.selectors import active_embedder
from memory_admin.dashboard.sessions import operation_row, session_row
from memory_admin.dashboard.users import memory_rows, memory_totals, profile_card
from sessions_app.models import AgentSession, OperationStatus
from tenants_app import selectors as tenant_selectors

# A write is stamped (updated_at) inside its transaction and published after commit, and a page is rendered
# before its socket opens: catching up from a little before the page's own time covers both gaps. Rows are
# keyed by id, so what comes twice is replaced, not repeated.
CATCHUP_MARGIN = timedelta(seconds=30)
CATCHUP_LIMIT = 200


def _instant(value: object) -> datetime | None:
    """An ISO timestamp with its offset, in UTC (Python takes offsets up to ±23:59, PostgreSQL only up to
    ±15:59), or None when absent or malformed."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if timezone.is_naive(parsed):
        return None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def parse_since(value: object) -> datetime | None:
    """The page's `since` (an ISO timestamp it was given by the server), or None when absent or malformed."""
    instant = _instant(value)
    try:  # year 1 has no margin
        return instant - CATCHUP_MARGIN if instant is not None else None
    except OverflowError:
        return None


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# Where a catch-up batch stopped in one kind of row: (created_at, id) of the last row sent, in that order.
Position = tuple[datetime, uuid.UUID]


def _position(value: object) -> Position | None:
    """A position as `user_page_catchup` gave it out ([iso time, id]), or None when absent or malformed."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    at, pk = _instant(value[0]), _uuid(value[1])
    return (at, pk) if at is not None and pk is not None else None


def _after(rows: QuerySet[Any], position: Position | None) -> QuerySet[Any]:
    if position is None:
        return rows
    at, pk = position
    return rows.filter(Q(created_at__gt=at) | Q(created_at=at, pk__gt=pk))


# --- the user page --------------------------------------------------------------------------------------


def _shown_on_user_page(memory: Memory, user_id: str) -> bool:
    return memory.scope == Scope.GLOBAL or memory.user_id == user_id


def memory_frames(memories: Iterable[Memory], user_id: str) -> list[dict[str, Any]]:
    """One frame per memory the user page shows: its rendered row, or `deleted` when it is gone — deleted, or
    hidden with its owner, whose erasure was approved (Memory.objects.alive() decides, as for the API)."""
    shown = [memory for memory in memories if _shown_on_user_page(memory, user_id)]
    alive_pks = set(
        Memory.objects.alive().filter(pk__in=[memory.pk for memory in shown]).values_list("pk", flat=True)
        if shown
        else ()
    )
    alive = [memory for memory in shown if memory.pk in alive_pks]
    embedder = active_embedder()
    rendered = {
        row.memory.pk: render_to_string("dashboard/users/memory_row.html", {"row": row})
        for row in memory_rows(alive, model_id=embedder.model_id, now=timezone.now())
    }
    return [
        {"memory": str(memory.pk), "scope": memory.scope, "deleted": memory.pk not in rendered}
        | ({"html": rendered[memory.pk]} if memory.pk in rendered else {})
        for memory in shown
    ]


def memory_rows_frame(tenant_pk: uuid.UUID, memories: Iterable[Memory], user_id: str) -> dict[str, Any] | None:
    """The `memory.rows` frame for these memories, with the fresh totals of the sections they are in (the page
    sets its counts from them: whether a row it does not show was counted already is not its to guess)."""
    rows = memory_frames(memories, user_id)
    if not rows:
        return None
    scopes = sorted({row["scope"] for row in rows})
    return {"type": "memory.rows", "rows": rows, "totals": memory_totals(tenant_pk, user_id, scopes)}


def _memories(tenant_pk: uuid.UUID, ids: Iterable[object]) -> list[Memory]:
    """The memories with these ids, live or not (memory_frames tells which)."""
    wanted = [pk for pk in (_uuid(value) for value in ids) if pk is not None]
    if not wanted:
        return []
    return list(
        Memory.objects.filter(tenant_id=tenant_pk, pk__in=wanted)
        .select_related("session")
        .defer("embedding")
        .order_by("created_at", "id")
    )


def profile_frame(tenant_pk: uuid.UUID, user_id: str, profile_pk: object = None) -> dict[str, Any] | None:
    profiles = UserProfile.objects.filter(tenant_id=tenant_pk, user_id=user_id)
    if profile_pk is not None:
        profiles = profiles.filter(pk=profile_pk if isinstance(profile_pk, int) else -1)
    profile = profiles.first()
    if profile is None:
        return None
    return {"type": "profile.html", "html": render_to_string("dashboard/users/profile.html", profile_card(profile))}


def user_session_frame(session: AgentSession) -> dict[str, Any]:
    return {
        "type": "user.session",
        "session": str(session.pk),
        "html": render_to_string("dashboard/users/session_row.html", {"s": session}),
    }


def user_page_frames(tenant_pk: uuid.UUID, user_id: str, message: dict[str, Any]) -> list[dict[str, Any]]:
    """What a published tenant message means for one user's page (nothing, mostly)."""
    kind = message.get("type")
    frames: list[dict[str, Any]] = []
    if kind in {"memory.created", "memory.updated", "memory.deleted"}:
        if rows_frame := memory_rows_frame(tenant_pk, _memories(tenant_pk, [message.get("memory")]), user_id):
            frames.append(rows_frame)
    elif kind == "promotion.finished":
        job_pk = _uuid(message.get("job"))
        job = PromotionJob.objects.filter(tenant_id=tenant_pk, pk=job_pk).first() if job_pk else None
        promoted = _memories(tenant_pk, [*job.created_ids, *job.updated_ids]) if job is not None else []
        if rows_frame := memory_rows_frame(tenant_pk, promoted, user_id):
            frames.append(rows_frame)
    elif kind == "profile.updated":
        frame = profile_frame(tenant_pk, user_id, message.get("profile"))
        if frame:
            frames.append(frame)
    elif kind in {"session.created", "session.updated"}:
        session = AgentSession.objects.filter(
            tenant_id=tenant_pk, session_id=str(message.get("session", "")), user_id=user_id
        ).first()
        if session is not None:
            frames.append(user_session_frame(session))
    elif kind == "erasure.updated" and erased(tenant_pk, user_id, request=message.get("erasure")):
        frames.append(ERASED_FRAME)
    return frames


# The user page's notice that its person was erased: it drops everything it shows. Nothing of the request (its
# id, status, progress) is in it: a support user may see the notice, not the request.
ERASED_FRAME: dict[str, Any] = {"type": "user.erased"}


def erased(tenant_pk: uuid.UUID, user_id: str, *, request: object = None, since: datetime | None = None) -> bool:
    """Whether this person's erasure was approved: through the erasure request `request` (an id from a published
    message), or at or after `since`. Found by the person's keyed subject hash, which the request keeps after
    its purge has cleared the user id."""
    requests = ErasureRequest.objects.filter(
        tenant_id=tenant_pk, subject=subject_of(tenant_pk, user_id), erased_at__isnull=False
    )
    if request is not None:
        if (request_pk := _uuid(request)) is None:
            return False
        requests = requests.filter(pk=request_pk)
    if since is not None:
        requests = requests.filter(erased_at__gte=since)
    return requests.exists()


def user_page_catchup(
    tenant_pk: uuid.UUID, user_id: str, since: datetime, after: object = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """What of this user's page changed since `since`, a batch at a time: up to CATCHUP_LIMIT memories and as
    many sessions, after the positions in `after` (what the previous batch returned), and the profile with the
    first batch. Also returns where the next batch starts, None when this one reached the end. When the person's
    erasure was approved since then, the notice that they were erased instead (what the page shows is theirs)."""
    if erased(tenant_pk, user_id, since=since):
        return [ERASED_FRAME], None
    positions = after if isinstance(after, dict) else {}
    memory_from, session_from = _position(positions.get("memory")), _position(positions.get("session"))
    changed = Q(updated_at__gte=since) | Q(deleted_at__gte=since) | Q(created_at__gte=since)
    # Not only the live ones: what was deleted, or hidden with its owner, goes to the page as deleted.
    memories = list(
        _after(Memory.objects.filter(tenant_id=tenant_pk), memory_from)
        .filter(Q(user_id=user_id) | Q(scope=Scope.GLOBAL))
        .filter(changed)
        .select_related("session")
        .defer("embedding")
        .order_by("created_at", "id")[: CATCHUP_LIMIT + 1]
    )
    sessions = list(
        _after(AgentSession.objects.filter(tenant_id=tenant_pk, user_id=user_id), session_from)
        .filter(Q(created_at__gte=since) | Q(updated_at__gte=since))
        .order_by("created_at", "id")[: CATCHUP_LIMIT + 1]
    )
    more = len(memories) > CATCHUP_LIMIT or len(sessions) > CATCHUP_LIMIT
    memories, sessions = memories[:CATCHUP_LIMIT], sessions[:CATCHUP_LIMIT]
    frames: list[dict[str, Any]] = []
    if rows_frame := memory_rows_frame(tenant_pk, memories, user_id):
        frames.append(rows_frame)
    first_batch = memory_from is None and session_from is None
    profiles = UserProfile.objects.filter(tenant_id=tenant_pk, user_id=user_id, updated_at__gte=since)
    if first_batch and (profile := profiles.first()) is not None:
        frames.append(
            {"type": "profile.html", "html": render_to_string("dashboard/users/profile.html", profile_card(profile))}
        )
    frames += [user_session_frame(session) for session in sessions]
    if not more:
        return frames, None
    memory_to = (memories[-1].created_at, memories[-1].pk) if memories else memory_from
    session_to = (sessions[-1].created_at, sessions[-1].pk) if sessions else session_from
    return frames, {
        name: [position[0].isoformat(), str(position[1])]
        for name, position in (("memory", memory_to), ("session", session_to))
        if position is not None
    }


# --- the API keys page (admins) -------------------------------------------------------------------------


def key_frames(
    tenant_pk: uuid.UUID | None, *, key_pk: object = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """The API keys page's rows: one key of a tenant (`key_pk`), or the keys of a tenant, or of every tenant
    (`tenant_pk` None), created or revoked since `since`."""
    keys = tenant_selectors.api_keys()
    if tenant_pk is not None:
        keys = keys.filter(tenant_id=tenant_pk)
    if key_pk is not None:
        keys = keys.filter(pk=key_pk if isinstance(key_pk, int) else -1)
    elif since is not None:
        keys = keys.filter(Q(created_at__gte=since) | Q(revoked_at__gte=since))
    else:
        return []
    return [
        {
            "type": "api_key.row",
            "key": key.pk,
            "html": render_to_string("dashboard/admin/key_row.html", {"key": key}),
        }
        for key in keys.order_by("created_at", "id")[:CATCHUP_LIMIT]
    ]


# --- the session page -----------------------------------------------------------------------------------


def operation_frame(session_pk: str, operation_pk: object) -> dict[str, Any] | None:
    """A journal entry as the session page renders it, with the session's pending count."""
    session_id, operation_id = _uuid(session_pk), _uuid(operation_pk)
    session = AgentSession.objects.filter(pk=session_id).first() if session_id else None
    operation = session.operations.filter(pk=operation_id).first() if session and operation_id else None
    if session is None or operation is None:
        return None
    html = render_to_string("dashboard/sessions/operation_row.html", {"row": operation_row(session, operation)})
    pending = session.operations.filter(status=OperationStatus.PENDING).count()
    return {"type": "operation.row", "operation": str(operation.pk), "pending": pending, "html": html}


# --- the sessions list ----------------------------------------------------------------------------------


def session_list_catchup(
    tenant_pk: uuid.UUID | None, since: datetime, after: object = None
) -> tuple[list[dict[str, Any]], list[str] | None]:
    """The rows of the sessions created since `since`, of one tenant or (None) of every tenant, a batch at a time:
    up to CATCHUP_LIMIT, oldest first, after the position `after` (what the previous batch returned). Also
    returns where the next batch starts, None when this one reached the newest."""
    # Through the (tenant, created_at) index, or the recent sessions' one: new sessions only; a status change
    # missed while offline shows on the next reload.
    sessions = _after(AgentSession.objects.select_related("tenant").filter(created_at__gte=since), _position(after))
    if tenant_pk is not None:
        sessions = sessions.filter(tenant_id=tenant_pk)
    rows = list(sessions.order_by("created_at", "id")[: CATCHUP_LIMIT + 1])
    frames = [
        {
            "type": "session.row",
            "tenant": str(session.tenant_id),
            "session": session.session_id,
            "html": session_row(session, fresh=True),
        }
        for session in rows[:CATCHUP_LIMIT]
    ]
    if len(rows) <= CATCHUP_LIMIT:
        return frames, None
    last = rows[CATCHUP_LIMIT - 1]
    return frames, [last.created_at.isoformat(), str(last.pk)]


def session_row_html(tenant_pk: uuid.UUID, session_id: object) -> str | None:
    session = (
        AgentSession.objects.select_related("tenant").filter(tenant_id=tenant_pk, session_id=str(session_id)).first()
    )
    if session is None:
        return None
    return session_row(session, fresh=True)
