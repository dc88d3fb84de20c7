"""Compliance pages: file, review, approve or reject forget-me requests; watch them run; download receipts.
File exports of everything held about a person, watch them build, download the archive (audited)."""

from __future__ import annotations

import json
import uuid

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from compliance_app import scope, selectors, services
from compliance_app.export import LAYERS as EXPORT_LAYERS
from compliance_app.models import ErasureRequest, ErasureStatus, ExportRequest, ExportStatus, LegalBasis
from memory_admin.dashboard.access import staff_page
from memory_admin.errors import NotFound, ServiceError, ValidationFailed
from tenants_app.models import Tenant
from tenants_app.roles import Role

STORE_NAMESPACES_SHOWN = 100


def actor(request: HttpRequest) -> str:
    return f"staff:{request.user.get_username()}"


def _erasure_or_404(pk: uuid.UUID) -> ErasureRequest:
    try:
        return selectors.get_erasure(request_id=pk)
    except NotFound:
        raise Http404 from None


def _export_or_404(pk: uuid.UUID) -> ExportRequest:
    try:
        return selectors.get_export(export_id=pk)
    except NotFound:
        raise Http404 from None


class ErasureForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all())
    # Exactly as the tenant stores it, spaces included: " alice " and "alice" are two people to the API.
    user_id = forms.CharField(max_length=256, strip=False, label="User id (as the tenant knows the person)")
    identifiers = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Further identifiers, one per line"
    )
    legal_basis = forms.ChoiceField(choices=LegalBasis.choices)
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


@staff_page(Role.COMPLIANCE)
def erasure_list(request: HttpRequest) -> HttpResponse:
    form = ErasureForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            erasure = services.file_erasure(
                tenant=data["tenant"],
                user_id=data["user_id"],
                identifiers=[line.strip() for line in data["identifiers"].splitlines() if line.strip()],
                legal_basis=data["legal_basis"],
                note=data["note"],
                filed_by=actor(request),
            )
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Request filed. A second compliance user must approve it.")
            return redirect("dashboard:erasure", pk=erasure.pk)
    requests = list(selectors.erasure_requests().order_by("-filed_at")[:200])
    return render(request, "dashboard/compliance/list.html", {"form": form, "requests": requests})


@staff_page(Role.COMPLIANCE)
def erasure_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    erasure = _erasure_or_404(pk)
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "approve":
                services.approve_erasure(request_id=pk, decided_by=actor(request))
                messages.success(request, "Approved: the person is erased everywhere; the physical purge is queued.")
            elif action == "reject":
                reject = RejectForm(request.POST)
                if not reject.is_valid():
                    raise ValidationFailed("Give the reason for rejecting.")
                services.reject_erasure(request_id=pk, decided_by=actor(request), reason=reject.cleaned_data["reason"])
                messages.success(request, "Rejected.")
            elif action == "purge_again":
                services.purge_again(request_id=pk, requested_by=actor(request))
                messages.success(request, "The purge and the verification scan run again.")
        except ServiceError as exc:
            messages.error(request, exc.message)
        return redirect("dashboard:erasure", pk=pk)
    if request.GET.get("format") == "json":
        # What the live page checks when its socket (re)connects, so no update in between is missed.
        return JsonResponse({"status": erasure.status, "progress": erasure.progress, "purged": erasure.purged})
    preview = selectors.current_preview(erasure)
    store_namespaces: list[list[str]] = []
    if erasure.status == ErasureStatus.PENDING:  # approval deletes them; the record keeps no names
        store_namespaces = scope.Person(tenant=erasure.tenant, user_id=erasure.user_id).store_namespaces()
    return render(
        request,
        "dashboard/compliance/detail.html",
        {
            "erasure": erasure,
            "layers": [(layer, preview.get(layer, 0), erasure.purged.get(layer)) for layer in scope.LAYERS],
            "audit": list(selectors.audit_trail(erasure)),
            "can_decide": erasure.status == ErasureStatus.PENDING
            and not (settings.ERASURE_FOUR_EYES and erasure.filed_by == actor(request)),
            "reject_form": RejectForm(),
            "findings": [(name, count) for name, count in erasure.verification.get("findings", {}).items() if count],
            # A failed request a later one of the person took over is not purged again: that one is.
            "taken_over_by": selectors.taken_over_by(erasure),
            "progress_layer": erasure.progress.get("layer") or "",
            # Which store namespaces approval deletes, for the approver to check (they are the tenant's choice).
            "store_namespaces": store_namespaces[:STORE_NAMESPACES_SHOWN],
            "store_namespaces_total": len(store_namespaces),
        },
    )


@staff_page(Role.COMPLIANCE)
def erasure_receipt(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    erasure = _erasure_or_404(pk)
    try:
        body = selectors.receipt(erasure)
    except ServiceError as exc:
        return render(request, "errors/400.html", {"message": exc.message}, status=409)
    if request.GET.get("format") == "json":
        response = JsonResponse(body, json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="erasure-receipt-{erasure.pk}.json"'
        return response
    return render(
        request,
        "dashboard/compliance/receipt.html",
        {"erasure": erasure, "receipt": body, "receipt_json": json.dumps(body, indent=2)},
    )


class ExportForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all())
    # Exactly as the tenant stores it, spaces included: " alice " and "alice" are two people to the API.
    user_id = forms.CharField(max_length=256, strip=False, label="User id (as the tenant knows the person)")
    legal_basis = forms.ChoiceField(choices=LegalBasis.choices, initial=LegalBasis.GDPR_ART_15)


@staff_page(Role.COMPLIANCE)
def export_list(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            export = services.file_export(
                tenant=data["tenant"],
                user_id=data["user_id"],
                legal_basis=data["legal_basis"],
                filed_by=actor(request),
            )
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Export filed: the archive is being built.")
            return redirect("dashboard:export", pk=export.pk)
    exports = list(selectors.export_requests().order_by("-filed_at")[:200])
    return render(request, "dashboard/compliance/exports.html", {"form": form, "exports": exports})


@staff_page(Role.COMPLIANCE)
def export_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    export = _export_or_404(pk)
    if request.GET.get("format") == "json":
        return JsonResponse({"status": export.status, "progress": export.progress})
    done = export.progress.get("layers", {})
    return render(
        request,
        "dashboard/compliance/export_detail.html",
        {
            "export": export,
            "layers": [(layer, done.get(layer)) for layer in EXPORT_LAYERS],
            "files": export.manifest.get("files", []),
            "audit": list(selectors.export_audit_trail(export)),
            "downloadable": export.status == ExportStatus.READY,
        },
    )


@staff_page(Role.COMPLIANCE)
def export_download(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    if request.method != "POST":
        # A download is an audited action: a link prefetched or crawled must not count as one.
        return redirect("dashboard:export", pk=pk)
    try:
        export, archive = services.download_export(export_id=pk, actor=actor(request))
    except NotFound:
        raise Http404 from None
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:export", pk=pk)
    response = HttpResponse(archive, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="export-{export.pk}.zip"'
    return response
