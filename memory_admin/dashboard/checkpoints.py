"""Dashboard pages for a session's checkpoints: the list with the chain's integrity, and the diff of any two."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from checkpoints_app import selectors
from checkpoints_app.chain import Verification
from checkpoints_app.models import Checkpoint
from checkpoints_app.patching import make_patch, summarise
from langgraph_app.display import readable_checkpoint, recent_checkpoints
from memory_admin.dashboard.access import staff_page
from memory_admin.dashboard.difftree import diff_tree, nan_as_equal
from memory_admin.errors import IntegrityFailure, NotFound
from memory_admin.query import whole_number
from sessions_app.models import AgentSession
from sessions_app.selectors import timeline_row

PAGE_SIZE = 50


def _session_or_404(pk: uuid.UUID) -> AgentSession:
    return get_object_or_404(AgentSession.objects.select_related("tenant"), pk=pk)


def _integrity(row: Checkpoint, verification: Verification) -> str:
    """How the chain check went for this row: verified, broken (the first bad link) or unchecked (after it)."""
    bad = verification.first_bad_link
    if bad is None:
        return "verified"
    if str(row.pk) == bad["checkpoint_id"]:
        return "broken"
    return "verified" if row.sequence < bad["sequence"] else "unchecked"


def _row(row: Checkpoint, verification: Verification) -> dict[str, Any]:
    parent_sequence = getattr(row, "parent_sequence", None)
    return {
        "checkpoint": row,
        "parent_sequence": parent_sequence,
        # A branch: the parent is not the checkpoint saved just before (a save after time travel).
        "fork": parent_sequence is not None and parent_sequence != row.sequence - 1,
        "stored_bytes": getattr(row, "stored_bytes", 0),
        "integrity": _integrity(row, verification),
    }


@staff_page()
def checkpoint_list(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    session = _session_or_404(pk)
    page = selectors.checkpoint_page(session=session, before=whole_number(request.GET.get("before")), limit=PAGE_SIZE)
    rows, more = page[:PAGE_SIZE], len(page) > PAGE_SIZE
    # The whole chain is recomputed on each view: a row edited in SQL shows here at once.
    verification = selectors.chain_status(session=session)
    return render(
        request,
        "dashboard/checkpoints/list.html",
        {
            "session": session,
            "rows": [_row(row, verification) for row in rows],
            "verification": verification,
            "totals": selectors.checkpoint_totals(session=session),
            "next_before": rows[-1].sequence if more and rows else None,
            "paged": request.GET.get("before") is not None,
            "langgraph": recent_checkpoints(session),
        },
    )


def _langgraph_diff(request: HttpRequest, session: AgentSession) -> HttpResponse:
    """The diff of two LangGraph checkpoints of the session: decoded channel values, metadata, pending writes."""
    namespace = request.GET.get("ns", "")
    from_id, to_id = request.GET.get("from", "").strip(), request.GET.get("to", "").strip()
    if not from_id or not to_id:
        return _diff_error(request, session, "Pick two LangGraph checkpoints to compare.", 400)
    if "\x00" in namespace + from_id + to_id:  # no stored id holds one (PostgreSQL text cannot)
        return _diff_error(request, session, "At least one of the two checkpoints is not one of this thread's.", 404)
    source = readable_checkpoint(session, checkpoint_id=from_id, checkpoint_ns=namespace)
    target = readable_checkpoint(session, checkpoint_id=to_id, checkpoint_ns=namespace)
    if source is None or target is None:
        return _diff_error(request, session, "At least one of the two checkpoints is not one of this thread's.", 404)
    # Counted as the tree shows them: a NaN that stayed a NaN did not change.
    summary = summarise(nan_as_equal(source.state), nan_as_equal(target.state))
    try:
        patch = json.dumps(make_patch(source.state, target.state), indent=2, ensure_ascii=False)
    except RecursionError:  # jsonpatch recurses a few frames a level: a deeply nested value is past its reach
        patch = "Not available: a value is nested too deeply to compute the patch (the tree above shows the change)."
    return render(
        request,
        "dashboard/checkpoints/langgraph_diff.html",
        {
            "session": session,
            "source": source.row,
            "target": target.row,
            "tree": diff_tree(source.state, target.state),
            "summary": summary,
            "counts": {"added": len(summary.added), "removed": len(summary.removed), "changed": len(summary.changed)},
            "patch": patch,
        },
    )


def _checkpoint_id(request: HttpRequest, name: str) -> uuid.UUID:
    raw = request.GET.get(name, "").strip()
    if not raw:
        raise ValueError(f"Pick two checkpoints to compare: `{name}` is missing.")
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValueError(f"`{name}` is not a checkpoint id.") from None


def _diff_error(request: HttpRequest, session: AgentSession, message: str, status: int) -> HttpResponse:
    return render(request, "dashboard/checkpoints/diff.html", {"session": session, "error": message}, status=status)


@staff_page()
def checkpoint_diff(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    session = _session_or_404(pk)
    if request.GET.get("kind") == "langgraph":
        return _langgraph_diff(request, session)
    try:
        from_id, to_id = _checkpoint_id(request, "from"), _checkpoint_id(request, "to")
    except ValueError as exc:
        return _diff_error(request, session, str(exc), 400)
    try:
        diff = selectors.diff_checkpoints(session=session, from_id=from_id, to_id=to_id, with_payloads=True)
    except NotFound:
        return _diff_error(request, session, "At least one of the two checkpoints is not one of this session's.", 404)
    except IntegrityFailure as failure:
        return _diff_error(request, session, f"{failure.message} The diff is not shown from a broken chain.", 409)
    summary = diff.summary
    return render(
        request,
        "dashboard/checkpoints/diff.html",
        {
            "session": session,
            "diff": diff,
            "tree": diff_tree(diff.source_state, diff.target_state),
            "counts": {"added": len(summary.added), "removed": len(summary.removed), "changed": len(summary.changed)},
            "patch": json.dumps(diff.patch, indent=2, ensure_ascii=False),
            "events": [timeline_row(session, event) for event in diff.events],
            "event_range": sorted((diff.source.event_version, diff.target.event_version)),
        },
    )
