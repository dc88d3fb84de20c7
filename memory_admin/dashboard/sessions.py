"""Dashboard pages for sessions: the list, a session's page, and its state at any version."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import localtime

from lifecycle_app.selectors import ArchivedState, state_from_archive
from memories_app.services import MAX_USER_ID_CHARS
from memory_admin.api.errors import json_error
from memory_admin.dashboard.access import staff_page
from memory_admin.errors import Archived, ServiceError
from memory_admin.query import whole_number
from sessions_app import selectors
from sessions_app.models import AgentSession, Operation, OperationStatus, SessionStatus
from tenants_app.models import Tenant

PAGE_SIZE = 50
OPERATIONS_SHOWN = 50
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class UtcDateTimeField(forms.DateTimeField):
    """A date-time in UTC: Python takes offsets up to ±23:59, PostgreSQL only up to ±15:59."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("This date-time is out of range.", code="invalid") from None


class SessionFilterForm(forms.Form):
    # Exactly as given, spaces included: " bob " and "bob" are two people to the API.
    q = forms.CharField(required=False, max_length=256, strip=False, label="Session id or user id")
    # One person exactly, as a user's page links to it: the search also lists sessions whose id starts with
    # theirs, whoever they belong to.
    user_id = forms.CharField(required=False, max_length=MAX_USER_ID_CHARS, strip=False, label="User id")
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all(), required=False, empty_label="All tenants")
    status = forms.ChoiceField(choices=[("", "Any status"), *SessionStatus.choices], required=False)
    created_after = UtcDateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    created_before = UtcDateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def clean_q(self) -> str:
        q: str = self.cleaned_data["q"]
        return q if q.strip() else ""  # only spaces: nothing to search for (no id is blank)

    def clean_user_id(self) -> str:
        user_id: str = self.cleaned_data["user_id"]
        return user_id if user_id.strip() else ""


@dataclass(frozen=True)
class SessionPage:
    rows: list[AgentSession]
    next_cursor: str | None


@functools.cache
def _session_url_prefix() -> str:
    placeholder = uuid.UUID(int=0)
    return reverse("dashboard:session", args=[placeholder]).removesuffix(f"{placeholder}/")


def _when(moment: datetime) -> SafeString:
    return format_html('<time datetime="{}">{}</time>', moment.isoformat(), localtime(moment).strftime(_TIME_FORMAT))


def attribute_value(value: str) -> SafeString:
    """`value` escaped for an HTML attribute, a carriage return included: the parser reads a raw one as a line
    feed, so "night\r" would read back as "night\n", another session's id. A character reference survives."""
    return mark_safe(escape(value).replace("\r", "&#13;"))  # noqa: S308 (escaped just before)


def session_row(session: AgentSession, *, fresh: bool = False) -> SafeString:
    """One row of the sessions list (the page and the live socket both use it). The page's script finds a row
    by its `data-session`, which must read back as the very session id.

    Built in Python, not with a template include per row: at 50 rows that was most of the page's CPU.
    """
    return format_html(
        '<tr data-session="{}" data-tenant="{}" data-pk="{}"{}><td><a href="{}">{}</a></td><td>{}</td><td>{}</td>'
        '<td><span class="status status-{}">{}</span></td><td>{}</td><td>{}</td><td>{}</td></tr>',
        attribute_value(session.session_id),
        session.tenant_id,
        session.pk,
        mark_safe(' class="fresh"') if fresh else "",
        f"{_session_url_prefix()}{session.pk}/",
        session.session_id,
        session.tenant.name,
        session.user_id,
        session.status,
        session.status,
        session.head_version,
        _when(session.created_at),
        _when(session.last_activity_at),
    )


def _encode_cursor(session: AgentSession) -> str:
    raw = f"{session.created_at.isoformat()}|{session.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    try:
        created, pk = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        # In UTC: Python takes offsets up to ±23:59, PostgreSQL only up to ±15:59.
        return datetime.fromisoformat(created).astimezone(UTC), uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        return None


def session_page(filters: dict[str, Any], cursor: str | None) -> SessionPage:
    """Newest first, keyset-paginated on (created_at, id): each page costs the same at any depth."""
    sessions: QuerySet[AgentSession] = AgentSession.objects.select_related("tenant").order_by("-created_at", "-id")
    if filters.get("tenant"):
        sessions = sessions.filter(tenant=filters["tenant"])
    if filters.get("status"):
        sessions = sessions.filter(status=filters["status"])
    if filters.get("q"):
        sessions = sessions.filter(Q(session_id__startswith=filters["q"]) | Q(user_id=filters["q"]))
    if filters.get("user_id"):
        sessions = sessions.filter(user_id=filters["user_id"])
    if filters.get("created_after"):
        sessions = sessions.filter(created_at__gte=filters["created_after"])
    if filters.get("created_before"):
        sessions = sessions.filter(created_at__lt=filters["created_before"])
    position = _decode_cursor(cursor) if cursor else None
    if position:
        created, pk = position
        sessions = sessions.filter(created_at__lte=created).filter(Q(created_at__lt=created) | Q(id__lt=pk))
    rows = list(sessions[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return SessionPage(rows=rows, next_cursor=_encode_cursor(rows[-1]) if more and rows else None)


@staff_page()
def session_list(request: HttpRequest) -> HttpResponse:
    rendered_at = timezone.now()
    form = SessionFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_bound:
        # Only a filter that does not validate is ignored (the page names it): cleaned_data keeps the others.
        form.is_valid()
        filters = form.cleaned_data
    page = session_page(filters, request.GET.get("cursor"))
    query = request.GET.copy()
    query.pop("cursor", None)
    without_user = query.copy()
    without_user.pop("user_id", None)
    user_filter = filters.get("user_id") or ""
    return render(
        request,
        "dashboard/sessions/list.html",
        {
            "form": form,
            "page": page,
            "rows": [session_row(session) for session in page.rows],
            "query": query.urlencode(),
            "user_filter": user_filter,
            # A browser sends a line break in a form field as CRLF ("bob\r" would come back as "bob\r\n", another
            # person): such an id is not put in the form, so filtering again drops it rather than change it.
            "user_filter_in_form": not any(c in user_filter for c in "\r\n"),
            "without_user": without_user.urlencode(),
            # The list of one tenant watches that tenant; without a tenant filter, every tenant through one group.
            "watched_tenants": [str(filters["tenant"].pk)] if filters.get("tenant") else [],
            "watch_all": not filters.get("tenant"),
            # New sessions can only belong on the first page, and only without a time window, a search or a
            # user filter; a status filter is applied by the page itself.
            "live": not request.GET.get("cursor")
            and not any(filters.get(name) for name in ("q", "user_id", "created_after", "created_before")),
            "status_filter": filters.get("status") or "",
            "rendered_at": rendered_at,
        },
    )


def _session_or_404(pk: uuid.UUID) -> AgentSession:
    return get_object_or_404(AgentSession.objects.select_related("tenant"), pk=pk)


def operation_row(session: AgentSession, operation: Operation) -> dict[str, Any]:
    outcome = operation.result if operation.status == OperationStatus.COMPLETED else operation.error
    return {
        "op": operation,
        "params": json.dumps(selectors.decode(session, operation.params), ensure_ascii=False),
        "outcome": "" if outcome is None else json.dumps(selectors.decode(session, outcome), ensure_ascii=False),
    }


def _shown_as_json(value: Any) -> str:
    """A structured value as JSON for the page (not as Python writes it: `{'done': True}`); text as it is."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _archived_through(session: AgentSession, oldest_shown: int | None) -> int | None:
    """Up to which version the session's events are in the archive when the page shows none before
    `oldest_shown`, else None. Versions have no gaps and event archival takes the oldest first: what is
    missing below the first event Postgres keeps was moved to the archive (the API answers 410 there)."""
    if oldest_shown == 1 or not session.head_version:
        return None
    first_kept = selectors.events_for(session).order_by("version").values_list("version", flat=True).first()
    if first_kept is None:  # all of them (an archived session keeps only its row and its last snapshot)
        return session.head_version
    if oldest_shown is not None and oldest_shown > first_kept:
        return None  # older events are still here, on the next page
    return first_kept - 1 or None


@staff_page()
def session_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    session = _session_or_404(pk)
    before = whole_number(request.GET.get("before"))
    rows = selectors.timeline(session, before=before)
    oldest_shown = rows[0]["version"] if rows else None
    operations = selectors.operations_for(session)
    context = selectors.read_context(session=session, touch=False)
    return render(
        request,
        "dashboard/sessions/detail.html",
        {
            "session": session,
            "metadata": _pretty_json(session.metadata),
            "context": context,
            # Not `messages`: that is the flash messages' name in every template. Messages are validated
            # objects with a role and content (sessions_app.state.validate_message).
            "dialogue": [
                {"role": message["role"], "content": _shown_as_json(message["content"])} for message in context.messages
            ],
            "tools": [
                {"tool": view.tool, "ttl_seconds": view.ttl_seconds, "state": _pretty_json(view.state)}
                for view in selectors.list_tool_states(session=session)
            ],
            "operations": [
                operation_row(session, operation) for operation in operations.order_by("-created_at")[:OPERATIONS_SHOWN]
            ],
            "pending_count": operations.filter(status=OperationStatus.PENDING).count(),
            "timeline": rows,
            "paged": before is not None,
            "oldest_shown": oldest_shown,
            "archived_through": _archived_through(session, oldest_shown),
        },
    )


@staff_page()
def session_state(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """Time travel for the session page: the state after `version` events, as JSON; a 409 with the reason when
    the archive it needs cannot be read (as the archive's own page answers)."""
    session = _session_or_404(pk)
    version = whole_number(request.GET.get("version", str(session.head_version)))
    if version is None or version > session.head_version:
        raise Http404("No such version.")
    try:
        view: selectors.StateView | ArchivedState = selectors.rebuild_state(session, version=version)
    except Archived:
        # Older than what Postgres keeps: rebuilt from the archive, and the page says so.
        try:
            view = state_from_archive(session, version=version)
        except ServiceError as exc:  # an archive object missing from storage or failing its checksum
            return json_error(request, 409, exc.code, exc.message, exc.details)
    return JsonResponse(
        {
            "version": view.version,
            "state": view.state,
            "snapshot_version": view.snapshot_version,
            "replayed_events": view.replayed_events,
            "from_archive": isinstance(view, ArchivedState),
        }
    )
