"""Background work of the erasure workflow: thin, idempotent, resumable tasks that take ids."""

from __future__ import annotations

import socket

from celery import shared_task
from django.utils import timezone

from compliance_app import services, verification
from compliance_app.models import ErasureRequest, ErasureStatus


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
    run (a retry, or the beat sweep) deletes what is left and verifies."""
    request = services.claim_purge(request_id=request_pk, worker=_worker())
    if request is None:
        return
    removed = services.purge(request=request)
    services.record_purge(request_id=request_pk, removed=removed, worker=_worker())
    request.refresh_from_db()
    verification.scrub_other_requests(request)
    services.record_verification(request_id=request_pk, findings=verification.scan(request), worker=_worker())


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
