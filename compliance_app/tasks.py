"""Background work of the erasure workflow: thin, idempotent, resumable tasks that take ids."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import structlog
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from compliance_app import services, verification
from compliance_app.export import ExportTooLarge, build_archive
from compliance_app.models import AuditEntry, ErasureRequest, ErasureStatus, ExportRequest, ExportStatus
from memory_admin.errors import Erased, IntegrityFailure, NotFound

PROGRESS_EVERY_SECONDS = 0.5
# Builds of one export over all its queue messages, retries and sweeps: past this many, what fails is taken to
# be the export's data, not the worker, and the export is failed rather than started again for ever.
MAX_EXPORT_ATTEMPTS = 10

logger = structlog.get_logger(__name__)


def _worker() -> str:
    return f"worker:{socket.gethostname()}"


@shared_task(
    name="compliance_app.purge_erasure",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=8,
)
def purge_erasure(request_pk: str) -> None:
    """Purge an erased person physically, then verify. A crash mid-way leaves the lease to expire; the next
    run (a retry, or the beat sweep) deletes what is left and verifies. The run's progress renews the lease; a
    run that was taken over all the same (blocked in one batch for longer than the lease) stops at its next
    progress or record and leaves the purge and its verification to the run that took over. The verification
    renews the lease as it goes too (a scan of a big database may outlast it)."""
    request = services.claim_purge(request_id=request_pk, worker=_worker())
    if request is None:
        return
    claim = request.claim_token
    assert claim is not None  # set by the claim
    try:
        removed = services.purge(request=request, progress=_throttled(request_pk, claim))
        services.record_purge(request_id=request_pk, removed=removed, worker=_worker(), claim=claim)
        request.refresh_from_db()
        # The lease record_purge renewed is kept through the verification, however long its scan.
        renew = _renewing(request_pk, claim)
        verification.scrub_other_requests(request, renew=renew)
        findings = verification.scan(request, renew=renew)
        services.record_verification(request_id=request_pk, findings=findings, worker=_worker(), claim=claim)
    except services.ClaimLost:
        logger.warning("erasure_purge_claim_lost", erasure=request_pk)


def _throttled(request_pk: str, claim: uuid.UUID) -> Callable[[dict[str, int], str], None]:
    """Report purge progress (renewing the lease) to the row and the live page at most every
    PROGRESS_EVERY_SECONDS."""
    last = [0.0]

    def report(removed: dict[str, int], layer: str) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS:
            last[0] = now
            services.record_purge_progress(request_id=request_pk, removed=removed, layer=layer, claim=claim)

    return report


def _renewing(request_pk: str, claim: uuid.UUID) -> Callable[[], None]:
    """Renew the purge's lease (raising ClaimLost once another run took it over) at most every
    PROGRESS_EVERY_SECONDS."""
    last = [time.monotonic()]

    def renew() -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS:
            last[0] = now
            services.renew_purge_lease(request_id=request_pk, claim=claim)

    return renew


@shared_task(name="compliance_app.resume_purges", ignore_result=True)
def resume_purges() -> int:
    """Beat: pick up purges whose worker died (lease expired) or whose queue message was lost."""
    stale = ErasureRequest.objects.filter(status__in=[ErasureStatus.ERASED, ErasureStatus.PURGING]).exclude(
        claimed_until__gt=timezone.now()
    )
    count = 0
    for pk in stale.values_list("pk", flat=True)[:100]:
        purge_erasure.delay(str(pk))
        count += 1
    return count


@shared_task(
    name="compliance_app.build_export",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
)
def build_export(export_pk: str) -> None:
    """Build a person's export archive. Idempotent: a finished export is left alone, a running one belongs to
    its worker until the lease expires; then the beat sweep re-queues it and the archive is built again. Each
    layer written renews the lease; a build that was taken over all the same stops at its next layer or at
    its end and stores nothing."""
    export = services.claim_export(export_id=export_pk, worker=_worker())
    if export is None:
        return
    try:
        _build(export)
    except services.ClaimLost:
        logger.warning("export_build_claim_lost", export=export_pk)


def _build(export: ExportRequest) -> None:
    export_pk, claim = str(export.pk), export.claim_token
    assert claim is not None  # set by the claim
    # Each claim is audited once: the audit log counts the attempts, those of killed workers included.
    attempts = AuditEntry.objects.filter(export=export, action="export_started").count()
    if attempts > MAX_EXPORT_ATTEMPTS:
        reason = f"The export could not be built in {MAX_EXPORT_ATTEMPTS} attempts; file a new request."
        services.fail_export(export_id=export_pk, reason=reason, worker=_worker(), claim=claim)
        return
    try:
        archive, manifest = build_archive(
            export,
            generated_at=timezone.now(),
            max_bytes=settings.EXPORT_MAX_BYTES,
            on_layer=lambda layer, rows: services.record_export_progress(
                export_id=export_pk, layer=layer, rows=rows, claim=claim
            ),
        )
    except (ExportTooLarge, Erased, IntegrityFailure, NotFound) as exc:
        # Not worth a retry: the same data gives the same answer (NotFound: an archive object is lost).
        reason = str(getattr(exc, "message", exc))
        services.fail_export(export_id=export_pk, reason=reason, worker=_worker(), claim=claim)
        return
    except services.ClaimLost:
        raise
    except Exception:
        # Released for the retry, unless another build holds it by now.
        ExportRequest.objects.filter(pk=export_pk, status=ExportStatus.RUNNING, claim_token=claim).update(
            claimed_until=None
        )
        raise
    services.finish_export(export_id=export_pk, archive=archive, manifest=manifest, worker=_worker(), claim=claim)


@shared_task(name="compliance_app.sweep_exports", ignore_result=True)
def sweep_exports() -> dict[str, int]:
    """Beat: delete expired archives; re-queue exports whose worker died or whose queue message was lost."""
    expired = services.expire_exports()
    now = timezone.now()
    stale = (
        ExportRequest.objects.filter(status__in=[ExportStatus.PENDING, ExportStatus.RUNNING])
        .exclude(claimed_until__gt=now)
        .exclude(status=ExportStatus.PENDING, filed_at__gt=now - timedelta(minutes=2))  # its message is in flight
    )
    requeued = 0
    for pk in stale.values_list("pk", flat=True)[:100]:
        build_export.delay(str(pk))
        requeued += 1
    return {"expired": expired, "requeued": requeued}
