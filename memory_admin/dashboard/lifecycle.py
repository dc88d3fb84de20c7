"""Dashboard pages for lifecycle: retention policies (global and per tenant), what each would do now (the dry
run), eviction candidates and recent job runs for admins; a session's archives, read back for an audit, for
every staff member (they hold the session's history, which support staff already read on the session page)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from lifecycle_app import selectors, services
from lifecycle_app.models import ArchiveSegment, Job, RetentionPolicy
from lifecycle_app.policies import DEFAULTS, policy_groups
from lifecycle_app.tasks import TASKS
from memory_admin.codec import decode_payload
from memory_admin.dashboard.access import staff_page
from memory_admin.errors import ServiceError
from memory_admin.redis_guard import queue_task
from sessions_app.models import AgentSession
from tenants_app.models import Tenant
from tenants_app.roles import Role

_INHERIT = [("", "inherit"), ("on", "on"), ("off", "off")]
_LABELS = {
    "session_archival_enabled": "Session archival",
    "session_archive_after_days": "Archive sessions idle for (days)",
    "event_archival_enabled": "Event archival",
    "event_retention_days": "Keep events in Postgres for (days)",
    "checkpoint_retention_enabled": "Checkpoint retention",
    "checkpoint_retention_days": "Remove checkpoints older than (days)",
    "checkpoint_keep_latest": "Always keep the latest (per session)",
    "memory_eviction_enabled": "Memory eviction",
    "memory_eviction_threshold": "Eviction threshold (decay weight)",
    "memory_eviction_grace_days": "Grace period before eviction (days)",
    "context_ttl_seconds": "Dialogue context in Redis, after the last activity (seconds)",
    "tool_state_ttl_seconds": "Tool state in Redis, after its last write (seconds)",
    "idempotency_ttl_seconds": "Idempotency keys in Redis (seconds)",
}


class PolicyForm(forms.Form):
    """Every policy field; empty means "inherit" (the global policy, or the setting for the global row)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in DEFAULTS:
            label = _LABELS[name]
            if name.endswith("_enabled"):
                self.fields[name] = forms.ChoiceField(choices=_INHERIT, required=False, label=label)
            elif name == "memory_eviction_threshold":
                self.fields[name] = forms.FloatField(required=False, min_value=0.0, max_value=100.0, label=label)
            elif name.endswith("_ttl_seconds"):
                self.fields[name] = forms.IntegerField(
                    required=False, min_value=60, max_value=30 * 24 * 3600, label=label
                )
            else:
                self.fields[name] = forms.IntegerField(required=False, min_value=0, label=label)

    @staticmethod
    def initial_from(row: RetentionPolicy | None) -> dict[str, Any]:
        if row is None:
            return {}
        values: dict[str, Any] = {}
        for name in DEFAULTS:
            value = getattr(row, name)
            values[name] = ("on" if value else "off") if isinstance(value, bool) else value
        return values

    def values(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = {}
        for name in DEFAULTS:
            value = self.cleaned_data.get(name)
            if name.endswith("_enabled"):
                cleaned[name] = None if not value else value == "on"
            else:
                cleaned[name] = value
        return cleaned


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


@staff_page(Role.ADMIN)
def lifecycle_overview(request: HttpRequest) -> HttpResponse:
    rows = {row.tenant_id: row for row in RetentionPolicy.objects.select_related("tenant")}
    groups = []
    for group in policy_groups():
        key = group.tenant.pk if group.tenant else None
        groups.append(
            {
                "group": group,
                "form": PolicyForm(initial=PolicyForm.initial_from(rows.get(key)), prefix=str(key or "global")),
                "previews": selectors.preview_group(group) if group.tenant_ids else [],
                "policy": group.policy.__dict__,
            }
        )
    overridden = {row.tenant_id for row in rows.values() if row.tenant_id}
    candidates, candidates_due, soonest = selectors.eviction_candidates(limit=25)
    return render(
        request,
        "dashboard/lifecycle/overview.html",
        {
            "groups": groups,
            "purge": selectors.preview_memory_purge(timezone.now()),
            "outbox": selectors.preview_outbox(timezone.now()),
            "candidates": candidates,
            "candidates_due": candidates_due,
            "soonest": soonest,
            "runs": selectors.recent_job_runs(limit=30),
            "jobs": Job.choices,
            "labels": _LABELS,
            "tenants_without_override": Tenant.objects.exclude(pk__in=overridden).order_by("name"),
            "facts": _facts(),
        },
    )


def _facts() -> list[tuple[str, str]]:
    return [
        ("Deleted memories are purged", f"{settings.MEMORY_PURGE_AFTER_HOURS} h after deletion"),
    ]


@require_POST
@staff_page(Role.ADMIN)
def policy_update(request: HttpRequest, tenant: uuid.UUID | None = None) -> HttpResponse:
    owner = get_object_or_404(Tenant, pk=tenant) if tenant else None
    form = PolicyForm(request.POST, prefix=str(tenant or "global"))
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        messages.error(request, f"{_LABELS.get(field, field)}: {' '.join(str(error) for error in errors)}")
        return redirect("dashboard:lifecycle")
    try:
        services.set_retention_policy(tenant=owner, values=form.values(), updated_by=_actor(request))
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Saved the policy of {owner.name if owner else 'every tenant'}.")
    return redirect("dashboard:lifecycle")


@require_POST
@staff_page(Role.ADMIN)
def override_add(request: HttpRequest) -> HttpResponse:
    try:
        tenant = Tenant.objects.filter(pk=uuid.UUID(request.POST.get("tenant", ""))).first()
    except ValueError:
        tenant = None
    if tenant is None:
        messages.error(request, "Pick a tenant.")
    else:
        services.set_retention_policy(tenant=tenant, values={}, updated_by=_actor(request))
        messages.success(request, f"{tenant.name} now has its own policy (inheriting every value until you set it).")
    return redirect("dashboard:lifecycle")


@require_POST
@staff_page(Role.ADMIN)
def override_remove(request: HttpRequest, tenant: uuid.UUID) -> HttpResponse:
    owner = get_object_or_404(Tenant, pk=tenant)
    services.remove_retention_override(tenant=owner)
    messages.success(request, f"{owner.name} follows the global policy again.")
    return redirect("dashboard:lifecycle")


@require_POST
@staff_page(Role.ADMIN)
def job_start(request: HttpRequest, job: str) -> HttpResponse:
    if job not in TASKS:
        raise Http404("No such job.")
    dry_run = request.POST.get("dry_run") == "1"
    task = TASKS[Job(job)]
    actor = _actor(request)
    what = f"{'a dry run of ' if dry_run else ''}{Job(job).label.lower()}"
    # Nothing is written first, so nothing waits for a commit; a broker that is down is said, not a 500.
    if queue_task(task, dry_run=dry_run, triggered_by=actor):
        messages.success(request, f"Queued {what}.")
    else:
        messages.error(request, f"Could not queue {what}: the task broker cannot be reached. Try again shortly.")
    return redirect("dashboard:lifecycle")


@staff_page()
def session_archives(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    session = get_object_or_404(AgentSession.objects.select_related("tenant"), pk=pk)
    return render(
        request,
        "dashboard/lifecycle/archives.html",
        {"session": session, "segments": selectors.archives_for(session)},
    )


@staff_page()
def archive_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """An archive's rows, decoded for an audit (erased people's payloads say so instead)."""
    segment = get_object_or_404(ArchiveSegment.objects.select_related("session", "session__tenant"), pk=pk)
    session = segment.session
    try:
        document = selectors.read_archive(segment)
    except ServiceError as exc:
        return render(
            request, "dashboard/lifecycle/archive.html", {"segment": segment, "error": exc.message}, status=409
        )

    def shown(blob: bytes | memoryview | None) -> str:
        if blob is None:
            return ""
        try:
            value = decode_payload(blob, tenant_id=session.tenant_id, user_id=session.user_id)
        except ServiceError as exc:
            return f"({exc.message})"
        return json.dumps(value, ensure_ascii=False)[:2000]

    events = [
        {"version": row.version, "type": row.type, "payload": shown(row.payload), "created_at": row.created_at}
        for row in document.event_rows(session.pk)
    ]
    operations = [
        {"name": row.name, "status": row.status, "params": shown(row.params), "created_at": row.created_at}
        for row in document.operation_rows(session.pk)
    ]
    return render(
        request,
        "dashboard/lifecycle/archive.html",
        {
            "segment": segment,
            "session": session,
            "events": events,
            "operations": operations,
            "snapshots": [row.version for row in document.snapshot_rows(session.pk)],
        },
    )
