"""Reads of erasure requests, their audit trail and receipts."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.db.models.functions import Length
from django.utils import timezone

from compliance_app import scope
from compliance_app.models import AuditEntry, ErasureRequest, ErasureStatus, ExportRequest, ExportStatus
from memory_admin.errors import Conflict, NotFound, ServiceError
from tenants_app.models import Tenant


def erasure_requests(tenant: Tenant | None = None) -> QuerySet[ErasureRequest]:
    requests = ErasureRequest.objects.select_related("tenant")
    return requests.filter(tenant=tenant) if tenant is not None else requests


def get_erasure(*, request_id: Any, tenant: Tenant | None = None) -> ErasureRequest:
    try:
        request = erasure_requests(tenant).filter(pk=request_id).first()
    except (ValueError, TypeError):
        request = None
    if request is None:
        raise NotFound("No such erasure request.")
    return request


def audit_trail(request: ErasureRequest) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(erasure=request).order_by("at", "id")


def current_preview(request: ErasureRequest) -> dict[str, int]:
    """What erasing would remove now (pending requests), or what it removed (decided ones)."""
    if request.status == ErasureStatus.PENDING:
        return scope.preview(scope.Person(tenant=request.tenant, user_id=request.user_id))
    return dict(request.preview)


def oldest_open(tenant: Tenant | None = None) -> ErasureRequest | None:
    open_states = [ErasureStatus.PENDING, ErasureStatus.ERASED, ErasureStatus.PURGING]
    return erasure_requests(tenant).filter(status__in=open_states).order_by("filed_at").first()


def erasure_under_way(*, tenant: Tenant, subject: str) -> bool:
    """Whether an erasure of the person was approved and is not finished yet (erased logically, purge pending
    or running)."""
    under_way = [ErasureStatus.ERASED, ErasureStatus.PURGING]
    return ErasureRequest.objects.filter(tenant=tenant, subject=subject, status__in=under_way).exists()


def taken_over_by(request: ErasureRequest) -> ErasureRequest | None:
    """For a failed request that names no one any more, the later request of the person that took them over
    (its scan cleared this one and carries its identifiers, `verification.scrub_other_requests`): the one to
    purge and verify again. None for any other request, or when there is none (a row an older version blanked).
    """
    if request.status != ErasureStatus.FAILED or request.user_id:
        return None
    approved = [ErasureStatus.ERASED, ErasureStatus.PURGING, ErasureStatus.VERIFIED, ErasureStatus.FAILED]
    later = ErasureRequest.objects.filter(tenant_id=request.tenant_id, subject=request.subject, status__in=approved)
    # Of a chain of failed requests, the newest holds the person: the others were cleared as this one was.
    later = later.exclude(pk=request.pk).exclude(status=ErasureStatus.FAILED, user_id="")
    return later.order_by("-decided_at").first()


def receipt(request: ErasureRequest) -> dict[str, Any]:
    """The proof of erasure: the request, counts per layer, timestamps, the scan's result — no personal data."""
    if request.status != ErasureStatus.VERIFIED:
        raise Conflict("A receipt exists once the erasure is verified.", details={"status": request.status})
    return {
        "receipt_version": 1,
        "request": str(request.pk),
        "tenant": request.tenant.name,
        "subject": request.subject,
        "legal_basis": request.legal_basis,
        "filed_by": request.filed_by,
        "approved_by": request.decided_by,
        "timestamps": {
            "filed": request.filed_at.isoformat(),
            "due": request.due_at.isoformat(),
            "approved_and_erased": request.erased_at.isoformat() if request.erased_at else None,
            "purged": request.purged_at.isoformat() if request.purged_at else None,
            "verified": request.verified_at.isoformat() if request.verified_at else None,
        },
        "erased_per_layer": request.preview,
        "purged_per_layer": request.purged,
        "verification": request.verification,
        "audit": [
            {"at": entry.at.isoformat(), "actor": entry.actor, "action": entry.action} for entry in audit_trail(request)
        ],
    }


def export_requests(tenant: Tenant | None = None) -> QuerySet[ExportRequest]:
    """Export requests without their archives (which can be large), newest first."""
    requests = ExportRequest.objects.select_related("tenant").defer("archive")
    return requests.filter(tenant=tenant) if tenant is not None else requests


def get_export(*, export_id: Any, tenant: Tenant | None = None) -> ExportRequest:
    try:
        export = export_requests(tenant).filter(pk=export_id).first()
    except (ValueError, TypeError):
        export = None
    if export is None:
        raise NotFound("No such export request.")
    return export


class ExportGone(ServiceError):
    status = 410
    code = "expired"


def refuse_unless_downloadable(export: ExportRequest, *, archive_bytes: int | None) -> None:
    """Conflict while the export is not ready; Gone (410) once it expired or was withdrawn. `archive_bytes`
    is the archive's size, None when there is none."""
    if export.status == ExportStatus.EXPIRED or (export.status == ExportStatus.READY and archive_bytes is None):
        raise ExportGone("This export's archive was deleted (it expired or the person was erased).")
    if export.status != ExportStatus.READY or archive_bytes is None:
        raise Conflict("The export is not ready yet.", details={"status": export.status})
    if export.expires_at is not None and export.expires_at <= timezone.now():
        raise ExportGone("This export's archive expired; the next sweep deletes it.")


def downloadable_export(*, export_id: Any, tenant: Tenant) -> tuple[ExportRequest, int]:
    """The tenant's export and its archive's size, when it can be downloaded (see
    refuse_unless_downloadable); for a HEAD, which neither counts nor audits a download."""
    rows = export_requests(tenant).annotate(held_bytes=Length("archive"))
    export = rows.filter(pk=export_id).first()
    if export is None:
        raise NotFound("No such export request.")
    size: int | None = export.held_bytes
    refuse_unless_downloadable(export, archive_bytes=size)
    return export, size or 0


def export_audit_trail(export: ExportRequest) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(export=export).order_by("at", "id")
