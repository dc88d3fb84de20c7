"""Writes of the forget-me workflow: file, approve or reject, erase at once, purge, verify; and exports.

Every step appends to the audit log, naming the person only by their keyed hash.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import ForeignObjectRel, Model, Q
from django.utils import timezone

from checkpoints_app.models import Checkpoint, CheckpointHead
from compliance_app import scope
from compliance_app.keys import destroy_keys, subject_of
from compliance_app.models import (
    AuditEntry,
    ErasureRequest,
    ErasureStatus,
    ExportRequest,
    ExportStatus,
    LegalBasis,
)
from compliance_app.selectors import refuse_unless_downloadable, taken_over_by
from langgraph_app.models import ChannelBlob, PendingWrite, ThreadCheckpoint
from lifecycle_app.services import delete_session_archives
from memories_app.erased_keys import keep_erased_request_keys
from memories_app.models import Memory, MemoryRevision, PromotionJob
from memories_app.services import hide_owner, release_hidden_owner
from memory_admin.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from memory_admin.live import publish_all_on_commit, publish_on_commit, session_group, tenant_group
from sessions_app.models import AgentSession, Event, EventSnapshot, Operation, SessionStatus
from tenants_app import keycache
from tenants_app.models import Tenant

PURGE_LEASE = timedelta(minutes=10)
MAX_IDENTIFIERS = 20


class ClaimLost(Exception):
    """The job's run no longer holds its claim: its lease lapsed (a batch blocked for longer than the lease) and
    another run took the job over, or the job was closed meanwhile. The run stops and records nothing; the
    task that started it ends quietly."""


def audit(
    *,
    actor: str,
    action: str,
    tenant: Tenant,
    subject: str,
    erasure: ErasureRequest | None = None,
    export: ExportRequest | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor,
        action=action,
        tenant=tenant,
        subject=subject,
        erasure=erasure,
        export=export,
        details=details or {},
    )


def _clean_identifiers(identifiers: list[str]) -> list[str]:
    cleaned = []
    for identifier in identifiers:
        if not isinstance(identifier, str) or not identifier.strip() or len(identifier) > 256 or "\x00" in identifier:
            raise ValidationFailed("Identifiers are 1-256 characters each.", details={"field": "identifiers"})
        cleaned.append(identifier.strip())
    if len(cleaned) > MAX_IDENTIFIERS:
        raise ValidationFailed(f"At most {MAX_IDENTIFIERS} identifiers.", details={"field": "identifiers"})
    return cleaned


@transaction.atomic
def file_erasure(
    *,
    tenant: Tenant,
    user_id: str,
    legal_basis: str,
    filed_by: str,
    identifiers: list[str] | None = None,
    note: str = "",
    idempotency_key: str | None = None,
) -> ErasureRequest:
    """Take a forget-me request for a person; it waits for a compliance user's approval.

    The deadline is ERASURE_DUE_DAYS from now. An unknown person is fine: the preview will show zeros.
    The user id is taken exactly as given (the other APIs keep " alice " apart from "alice"); a blank one is
    refused. The same `idempotency_key` again (api.idempotency.stored_key) files nothing and returns the
    request filed with it, as it is now; for another person or legal basis (or, while the request still holds
    them, another note or identifiers) it is a 422.
    """
    if not user_id.strip() or len(user_id) > 256 or "\x00" in user_id:
        raise ValidationFailed("user_id is 1-256 characters.", details={"field": "user_id"})
    if legal_basis not in LegalBasis.values:
        raise ValidationFailed("Unknown legal basis.", details={"field": "legal_basis", "allowed": LegalBasis.values})
    identifiers, note, subject = _clean_identifiers(identifiers or []), note[:2000], subject_of(tenant.pk, user_id)
    request, created = _filed_once(
        ErasureRequest,
        tenant=tenant,
        idempotency_key=idempotency_key,
        user_id=user_id,
        identifiers=identifiers,
        subject=subject,
        legal_basis=legal_basis,
        note=note,
        filed_by=filed_by,
        due_at=timezone.now() + timedelta(days=settings.ERASURE_DUE_DAYS),
    )
    if not created:
        if (request.subject, request.legal_basis) != (subject, legal_basis) or (
            # Scrubbed once verified, a request keeps only the keyed hash; a failed one's identifiers may have
            # been added to it since.
            request.user_id and (request.note != note or not set(identifiers) <= set(request.identifiers))
        ):
            raise _key_used_for_another_request()
        return request
    audit(
        actor=filed_by,
        action="filed",
        tenant=tenant,
        subject=request.subject,
        erasure=request,
        details={"legal_basis": legal_basis, "due_at": request.due_at.isoformat()},
    )
    _publish(request)
    return request


_Filed = TypeVar("_Filed", ErasureRequest, ExportRequest)


def _filed_once(
    model: type[_Filed], *, tenant: Tenant, idempotency_key: str | None, **fields: Any
) -> tuple[_Filed, bool]:
    """The new request and True; or, when `idempotency_key` was used already, the request filed with it and
    False (the caller compares the two)."""
    try:
        with transaction.atomic():  # a taken key must not end the caller's transaction: it is answered here
            return model.objects.create(tenant=tenant, idempotency_key=idempotency_key or None, **fields), True
    except IntegrityError:
        earlier = (
            model.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first() if idempotency_key else None
        )
        if earlier is None:  # not the key's constraint
            raise
        return earlier, False


def _key_used_for_another_request() -> Unprocessable:
    """The same Idempotency-Key with another body, told apart by what Postgres keeps (the Redis record of the
    first answer, which says the same, may have expired or been lost)."""
    return Unprocessable(
        "This Idempotency-Key was already used with a different request body.", details={"header": "Idempotency-Key"}
    )


def _publish(request: ErasureRequest, *, progress: dict[str, Any] | None = None) -> None:
    publish_on_commit(
        [tenant_group(request.tenant_id)],
        {
            "type": "erasure.updated",
            "tenant": str(request.tenant_id),
            "erasure": str(request.pk),
            "status": request.status,
            "progress": progress or {},
        },
    )


def _locked(request_id: Any) -> ErasureRequest:
    request = (
        ErasureRequest.objects.select_for_update(of=("self",)).select_related("tenant").filter(pk=request_id).first()
    )
    if request is None:
        raise NotFound("No such erasure request.")
    return request


@transaction.atomic
def reject_erasure(*, request_id: Any, decided_by: str, reason: str) -> ErasureRequest:
    """Turn a pending request down with a reason; nothing is erased.

    The reason is free text and may name the person ("alice has an open contract"), so it is kept on the
    request row alone, which the person's later verified erasure clears (`scrub_other_requests`); when an
    erasure of theirs was verified while this request waited, it keeps only the keyed hash at once, reason and
    note included. The append-only audit log records only that a reason was given and its length: what can never be
    deleted must not hold personal data.
    """
    if not reason.strip():
        raise ValidationFailed("Give the reason for rejecting.", details={"field": "reason"})
    request = _locked(request_id)
    if request.status == ErasureStatus.REJECTED:
        return request
    if request.status != ErasureStatus.PENDING:
        raise Conflict(f"The request is already {request.status}.", details={"status": request.status})
    request.status = ErasureStatus.REJECTED
    request.decided_by, request.decided_at, request.rejection_reason = decided_by, timezone.now(), reason[:2000]
    update = ["status", "decided_by", "decided_at", "rejection_reason"]
    reason_chars = len(request.rejection_reason)
    # A verification of the person since this request was filed passed it by as open (`scrub_other_requests`
    # clears closed requests only): closed now, it keeps only the keyed hash, as it would have then.
    verified_since = ErasureRequest.objects.filter(
        tenant=request.tenant, subject=request.subject, status=ErasureStatus.VERIFIED, verified_at__gte=request.filed_at
    )
    if verified_since.exists():
        request.user_id, request.identifiers, request.note, request.rejection_reason = "", [], "", ""
        update += ["user_id", "identifiers", "note"]
    request.save(update_fields=update)
    audit(
        actor=decided_by,
        action="rejected",
        tenant=request.tenant,
        subject=request.subject,
        erasure=request,
        details={"reason_given": True, "reason_chars": reason_chars},
    )
    _publish(request)
    return request


@transaction.atomic
def approve_erasure(*, request_id: Any, decided_by: str) -> ErasureRequest:
    """Approve a request and erase the person logically, in this one transaction.

    At once: their sessions are closed and invisible to every API, page, search and recall; their memories
    are deleted logically; the LangGraph store items that name them, their profile and its outbox are
    deleted; their data keys are destroyed, which
    makes every encrypted payload of theirs unreadable everywhere. After commit their Redis keys are purged
    and the physical purge job is queued. Approving an approved request again changes nothing.
    With four eyes on (ERASURE_FOUR_EYES), the approver must not be the person who filed it.
    """
    request = _locked(request_id)
    if request.status in (ErasureStatus.ERASED, ErasureStatus.PURGING, ErasureStatus.VERIFIED):
        return request
    if request.status != ErasureStatus.PENDING:
        raise Conflict(f"The request is already {request.status}.", details={"status": request.status})
    if not request.user_id:
        # A row an older version blanked when an earlier request of the person was verified: it names no one
        # (an empty user id would match the tenant's global memories and sessions without a user).
        raise Conflict(
            "This request no longer names a person: an earlier erasure of theirs was verified. Reject it, and file "
            "a new request if they are to be erased again.",
            details={"user_id": ""},
        )
    if settings.ERASURE_FOUR_EYES and decided_by == request.filed_by:
        raise Conflict("Four eyes: another compliance user must approve this request.", details={"four_eyes": True})
    person = scope.Person(tenant=request.tenant, user_id=request.user_id, identifiers=request.identifiers)
    # What approval removes itself is counted now; the rows that wait for the purge are counted by it, before
    # its first delete (`claim_purge`): counting a million events here would hold the approval up.
    request.preview = scope.volatile(person)
    now = timezone.now()
    session_pks = person.session_pks()
    AgentSession.all_objects.filter(pk__in=session_pks, erased_at__isnull=True).update(erased_at=now)
    AgentSession.all_objects.filter(pk__in=session_pks, status__in=[SessionStatus.ACTIVE, SessionStatus.PAUSED]).update(
        status=SessionStatus.FAILED
    )
    memories = person.memories(session_pks)
    request.refs = {"sessions": [str(pk) for pk in session_pks]}  # the memories' ids: `claim_purge`
    # The person's own memories vanish through one marker row; the few others (of their sessions, under
    # another user id) are marked one by one.
    hide_owner(tenant=request.tenant, user_id=request.user_id)
    memories.filter(deleted_at__isnull=True).exclude(user_id=request.user_id).update(deleted_at=now)
    # Store items are plain JSON (filters read them in SQL): nothing to shred, so they go now.
    person.store_items().delete()
    person.profiles().delete()
    person.profile_outbox().delete()
    keys = destroy_keys(tenant_id=request.tenant_id, user_id=request.user_id)
    # Every process forgets the sessions it remembers (sessions_app.identity) once this commits: none goes on
    # writing as this person from memory.
    keycache.invalidate_everywhere()
    withdrawn = withdraw_exports(tenant=request.tenant, subject=request.subject, actor=decided_by)
    request.status = ErasureStatus.ERASED
    request.decided_by, request.decided_at, request.erased_at = decided_by, now, now
    request.save(update_fields=["status", "decided_by", "decided_at", "erased_at", "preview", "refs"])
    audit(actor=decided_by, action="approved", tenant=request.tenant, subject=request.subject, erasure=request)
    audit(
        actor="system",
        action="erased_logically",
        tenant=request.tenant,
        subject=request.subject,
        erasure=request,
        details={"sessions": len(session_pks), "data_keys_destroyed": keys, "exports_withdrawn": withdrawn},
    )
    _publish_erased_sessions(request.tenant_id, session_pks)
    _publish(request)
    transaction.on_commit(lambda: _after_approval(str(request.pk), person, session_pks), robust=True)
    return request


# Session row ids per message to the tenant: a person with thousands of sessions is several messages, not one huge one.
ERASED_SESSIONS_PER_MESSAGE = 500


def _publish_erased_sessions(tenant_pk: Any, session_pks: list[Any]) -> None:
    """Tell open pages to drop the person's sessions, in one round trip after commit: each session's page, and
    the sessions lists of the tenant, by the sessions' row ids only (never the user id)."""
    erased = {"type": "session.erased", "tenant": str(tenant_pk)}
    pks = [str(pk) for pk in session_pks]
    publish_all_on_commit(
        [([session_group(pk)], erased) for pk in pks]
        + [
            ([tenant_group(tenant_pk)], {**erased, "sessions": pks[start : start + ERASED_SESSIONS_PER_MESSAGE]})
            for start in range(0, len(pks), ERASED_SESSIONS_PER_MESSAGE)
        ]
    )


def _after_approval(request_pk: str, person: scope.Person, session_pks: list[Any]) -> None:
    from compliance_app.tasks import purge_erasure

    scope.purge_redis(person, session_pks)
    purge_erasure.delay(request_pk)


@transaction.atomic
def purge_again(*, request_id: Any, requested_by: str) -> ErasureRequest:
    """Purge and verify a failed erasure once more: after staff removed what the scan found (a text elsewhere
    naming the person) or fixed what made the purge fail. The purge deletes whatever of the person is left,
    late writes included, then the scan runs again; the approval stands, so no second approver is needed.
    Conflict (409) for a request that has not failed, and for one that names no one any more: a later request
    of the person took them over when its scan ran (`verification.scrub_other_requests`), and is the one to
    purge again (the details name it). Blank, this one's scan would look for no one and prove nothing.
    """
    request = _locked(request_id)
    if request.status != ErasureStatus.FAILED:
        raise Conflict(
            f"Only a failed erasure is purged again; this one is {request.status}.", details={"status": request.status}
        )
    if not request.user_id:
        later = taken_over_by(request)
        raise Conflict(
            "This request no longer names the person: a later request of theirs took them over when its scan ran"
            + (f" ({later.pk}, {later.status}); purge and verify that one again." if later else ".")
            + " File a new request if they are to be erased again.",
            details={
                "user_id": "",
                "later_request": str(later.pk) if later else None,
                "later_status": later.status if later else None,
            },
        )
    request.status, request.claimed_until = ErasureStatus.ERASED, None
    request.save(update_fields=["status", "claimed_until"])
    audit(actor=requested_by, action="purge_retried", tenant=request.tenant, subject=request.subject, erasure=request)
    _publish(request)
    person = scope.Person(tenant=request.tenant, user_id=request.user_id, identifiers=request.identifiers)
    session_pks = request.refs.get("sessions", [])
    transaction.on_commit(lambda: _after_approval(str(request.pk), person, session_pks), robust=True)
    return request


def claim_purge(*, request_id: Any, worker: str) -> ErasureRequest | None:
    """Take the purge of an erased request for PURGE_LEASE; None when another worker holds it or it is done.

    The request returned names the claim (`claim_token`), which the run passes to every record_* call: its
    progress renews the lease, and once another run took the job over they raise ClaimLost.
    """
    now = timezone.now()
    claimed = (
        ErasureRequest.objects.filter(pk=request_id, status__in=[ErasureStatus.ERASED, ErasureStatus.PURGING])
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(status=ErasureStatus.PURGING, claimed_until=now + PURGE_LEASE, claim_token=uuid.uuid4())
    )
    if not claimed:
        return None
    request = ErasureRequest.objects.select_related("tenant").get(pk=request_id)
    if "memories" not in request.refs:
        # The rows approval erased, counted before the first delete (a run that died later finds them).
        person = scope.Person(tenant=request.tenant, user_id=request.user_id, identifiers=request.identifiers)
        session_pks = request.refs.get("sessions", [])
        counted = {**request.preview, **scope.stored_rows(person)}
        request.preview = {layer: counted[layer] for layer in scope.LAYERS if layer in counted}
        request.refs = {
            **request.refs,
            "memories": [str(pk) for pk in person.memories(session_pks).values_list("pk", flat=True)],
        }
        request.save(update_fields=["preview", "refs"])
    if request.purged_at is None:  # the first run, or the next after one that died (purge_again audits its own)
        audit(actor=worker, action="purge_started", tenant=request.tenant, subject=request.subject, erasure=request)
    _publish(request)
    return request


Progress = Callable[[str, int], None]
Counted = Callable[[int], object]


def _add_purged(request_pk: Any, layer: str, count: int) -> int:
    """Add `count` rows of `layer` to the request's `purged` totals, in the caller's transaction: the one that
    deleted them. A purge killed part-way thus keeps the count of what it deleted, and the run that resumes it
    adds only what it deletes itself. Returns `count`."""
    if count:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {ErasureRequest._meta.db_table} "  # noqa: S608 - the model's table, values bound
                "SET purged = purged || jsonb_build_object(%s::text, COALESCE((purged ->> %s)::bigint, 0) + %s) "
                "WHERE id = %s",
                [layer, layer, count, request_pk],
            )
    return count


def _delete_in_batches(
    table: str, column: str, ids: list[Any], batch: int, progress: Progress | None = None, *, counted: Counted
) -> int:
    """DELETE the rows of `table` whose `column` is in `ids`, `batch` rows per short transaction, which hands
    the batch's count to `counted` before it commits.

    The ids go `batch` at a time too: matching every row against all 100,000 ids of a large person, batch
    after batch, would cost more than the deletes themselves.
    """
    total = 0
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {table} WHERE ctid IN "  # noqa: S608 - model table and column names, values bound
                    f"(SELECT ctid FROM {table} WHERE {column} = ANY(%s) LIMIT %s)",
                    [chunk, batch],
                )
                deleted = int(cursor.rowcount)
                counted(deleted)
            total += deleted
            if progress is not None:
                progress(table, total)
            if deleted < batch:
                break
    return total


def _delete_referencing(model: type[Model], pks: list[Any], *, handled: set[type[Model]]) -> None:
    """Delete rows of any other table that still point at these rows (bookkeeping added by other apps),
    relations declared without a reverse accessor (`related_name="+"`) included."""
    relations = [field for field in model._meta.get_fields(include_hidden=True) if isinstance(field, ForeignObjectRel)]
    for relation in relations:
        related = relation.related_model
        if related in handled or not isinstance(related, type) or not issubclass(related, Model):
            continue
        if relation.many_to_many:
            continue
        with transaction.atomic():
            related._base_manager.filter(**{f"{relation.field.name}__in": pks}).delete()


def purge(*, request: ErasureRequest, progress: Callable[[dict[str, int], str], None] | None = None) -> dict[str, int]:
    """Physically delete everything the request covers, in short batches; safe to run again after a crash.

    Returns the rows (and Redis keys) removed by this run, per layer. Each delete also adds its count to the
    request's `purged` totals as it commits, so that a run killed part-way leaves the count of what it deleted
    and the run resuming it adds the rest (Redis keys are counted just after they go: a kill in between leaves
    them uncounted). `progress(removed so far, layer)` is called after every batch, for the live page, with the
    totals so far (an earlier run's included).

    Anything of the person's written between approval and this run goes too, as approval's own deletes would
    have taken it: sessions, memories, store items, a profile and its outbox facts (`late_profile`,
    `late_profile_outbox`), and data keys created since (`late_data_keys`, destroyed last, after every row a
    late write could have sealed with them is gone). A request that lost its user id (see approve_erasure)
    removes only the rows its approval erased, found by their ids. The Idempotency-Keys the memories were
    stored with are kept, as keyed hashes, for the idempotency lifetime: a retry of their create is a 410, as it
    was while they were there (memories_app.erased_keys; the person's records in Redis, see scope.purge_redis).
    """
    person = scope.Person(tenant=request.tenant, user_id=request.user_id, identifiers=request.identifiers)
    # What approval erased, plus anything of the person's that arrived since (a late write, a new session).
    session_pks = sorted({*request.refs.get("sessions", []), *map(str, person.session_pks())})
    # Read before the rows go: the Redis step at the end finds request records by the ids their paths name.
    session_ids = list(AgentSession.all_objects.filter(pk__in=session_pks).values_list("session_id", flat=True))
    batch = settings.ERASURE_PURGE_BATCH
    removed: dict[str, int] = {}
    # What earlier runs deleted: one killed part-way, or the purge of a failed erasure before it is run again.
    earlier = dict(request.purged)

    def tally(layer: str, count: int) -> int:
        return _add_purged(request.pk, layer, count)

    # A profile written after approval, and the facts it queued: first, so that no outbox fact becomes a
    # memory after the memories below are gone.
    with transaction.atomic():
        removed["late_profile_outbox"] = tally("late_profile_outbox", person.profile_outbox().delete()[0])
        removed["late_profile"] = tally("late_profile", person.profiles().delete()[0])

    def step(layer: str, before: int) -> Progress:
        def report(table: str, total: int) -> None:
            if progress is not None:
                this_run = {**removed, layer: before + total}
                totals = {name: earlier.get(name, 0) + this_run.get(name, 0) for name in {**earlier, **this_run}}
                progress(totals, layer)

        return report

    def delete(layer: str, model: type[Model], column: str, ids: list[Any]) -> None:
        """Delete in batches and count them under `layer` (which may gather several tables)."""
        table, before = model._meta.db_table, removed.get(layer, 0)
        deleted = _delete_in_batches(table, column, ids, batch, step(layer, before), counted=partial(tally, layer))
        removed[layer] = before + deleted

    memory_pks = sorted(
        {*request.refs.get("memories", []), *map(str, person.memories(session_pks).values_list("pk", flat=True))}
    )
    delete("memory_revisions", MemoryRevision, "memory_id", memory_pks)
    _delete_referencing(Memory, memory_pks, handled={MemoryRevision})
    # The rows hold the keys they were stored with, which make a retry of their create a 410: the keys are kept
    # without them, and every process told before the rows go (see memories_app.erased_keys).
    if keep_erased_request_keys(tenant=request.tenant, memory_ids=memory_pks):
        keycache.invalidate_everywhere(must_reach_redis=True)
    delete("memories", Memory, "id", memory_pks)
    if person.named:
        release_hidden_owner(tenant=request.tenant, user_id=request.user_id)
    delete("events", Event, "session_id", session_pks)
    delete("snapshots", EventSnapshot, "session_id", session_pks)
    delete("operations", Operation, "session_id", session_pks)
    delete("promotion_jobs", PromotionJob, "session_id", session_pks)
    delete("langgraph_values", ChannelBlob, "session_id", session_pks)
    delete("langgraph_values", PendingWrite, "session_id", session_pks)
    delete("langgraph_checkpoints", ThreadCheckpoint, "session_id", session_pks)
    with transaction.atomic():
        # A session's checkpoints go in one statement: they reference each other as parents.
        CheckpointHead.objects.filter(session_id__in=session_pks).delete()
        with connection.cursor() as cursor:
            table = Checkpoint._meta.db_table
            cursor.execute(f"DELETE FROM {table} WHERE session_id = ANY(%s)", [session_pks])  # noqa: S608
            removed["checkpoints"] = tally("checkpoints", int(cursor.rowcount))
    removed["archived_sessions"] = 0
    for session in AgentSession.all_objects.filter(pk__in=session_pks):
        with transaction.atomic():
            removed["archived_sessions"] += tally("archived_sessions", delete_session_archives(session=session))
    _delete_referencing(
        AgentSession,
        session_pks,
        handled={
            Event,
            EventSnapshot,
            Operation,
            PromotionJob,
            Checkpoint,
            CheckpointHead,
            Memory,
            ChannelBlob,
            PendingWrite,
            ThreadCheckpoint,
        },
    )
    delete("sessions", AgentSession, "id", session_pks)
    # Approval deleted the store items; these are items put under the person's namespaces since (a late write).
    with transaction.atomic():
        removed["late_store_items"] = tally("late_store_items", person.store_items().delete()[0])
    removed["redis_keys"] = scope.purge_redis(person, session_pks, session_ids)
    with transaction.atomic():
        tally("redis_keys", removed["redis_keys"])
        # A key a late write created after approval destroyed the person's keys. (A request that lost its user
        # id leaves keys alone: a live one is the returning person's, whose new data it seals.)
        removed["late_data_keys"] = tally(
            "late_data_keys", destroy_keys(tenant_id=request.tenant_id, user_id=request.user_id) if person.named else 0
        )
    # Now that none of their keys is live, every process drops the keys it holds, after the commit: one that
    # missed the approval's notice (Redis was away then) would otherwise go on sealing their next data with a
    # destroyed key, unreadable once its copy expires. Without Redis this fails, and the purge runs again later.
    keycache.invalidate_everywhere(must_reach_redis=True)
    return removed


def _refuse_unless_held(job: ErasureRequest | ExportRequest, claim: uuid.UUID) -> None:
    if job.claim_token != claim:
        raise ClaimLost(f"{job} is no longer this run's: another run took it over after its lease lapsed.")


@transaction.atomic
def record_purge(*, request_id: Any, removed: dict[str, int], worker: str, claim: uuid.UUID) -> ErasureRequest:
    """Close a finished purge run; `removed` (this run's counts) goes to the audit log. The run's deletes added
    their counts to `purged` as they committed (see `purge`): here every layer is named, those with none too.
    ClaimLost when another run took the purge over: that run records it. The lease is renewed for the
    verification that follows, which renews it as it goes (`renew_purge_lease`)."""
    request = _locked(request_id)
    _refuse_unless_held(request, claim)
    totals = {**dict.fromkeys(removed, 0), **request.purged}
    now = timezone.now()
    request.purged, request.purged_at, request.claimed_until = totals, now, now + PURGE_LEASE
    request.progress = {"layer": None, "removed": totals}
    request.save(update_fields=["purged", "purged_at", "claimed_until", "progress"])
    audit(
        actor=worker,
        action="purged",
        tenant=request.tenant,
        subject=request.subject,
        erasure=request,
        details={"removed": removed},
    )
    _publish(request, progress=request.progress)
    return request


@transaction.atomic
def record_verification(*, request_id: Any, findings: dict[str, int], worker: str, claim: uuid.UUID) -> ErasureRequest:
    """Store the scan's result; a clean scan closes the request and drops the person's identifiers from it.

    With them go the free texts that may name the person (the filer's note, a rejection reason): the closed
    request keeps the keyed hash, the counts, the timestamps and the audit trail, nothing typed about them.
    A scan that found something keeps it all, for the next run. ClaimLost when another run took the purge
    over (its scan, of what this one may have cleared already, is the one that counts).
    """
    request = _locked(request_id)
    _refuse_unless_held(request, claim)
    clean = not any(findings.values())
    request.verification = {"clean": clean, "findings": findings, "scanned_at": timezone.now().isoformat()}
    request.status = ErasureStatus.VERIFIED if clean else ErasureStatus.FAILED
    request.verified_at = timezone.now() if clean else None
    request.claimed_until, request.claim_token = None, None
    update = ["verification", "status", "verified_at", "claimed_until", "claim_token"]
    if clean:
        # The proof must not keep what it proves gone: only the keyed hash stays.
        request.user_id, request.identifiers, request.refs = "", [], {}
        request.note, request.rejection_reason = "", ""
        update += ["user_id", "identifiers", "refs", "note", "rejection_reason"]
    request.save(update_fields=update)
    audit(
        actor=worker,
        action="verified" if clean else "verification_failed",
        tenant=request.tenant,
        subject=request.subject,
        erasure=request,
        details={"findings": findings},
    )
    _publish(request)
    return request


def record_purge_progress(*, request_id: Any, removed: dict[str, int], layer: str, claim: uuid.UUID) -> None:
    """The running purge's counts so far, on the row and to the live page (outside any long transaction).

    The same statement renews the run's lease: a purge that makes progress keeps it however long it runs.
    ClaimLost when another run took the purge over (this one blocked longer than PURGE_LEASE in one batch).
    """
    progress = {"layer": layer, "removed": removed}
    renewed = ErasureRequest.objects.filter(pk=request_id, claim_token=claim).update(
        progress=progress, claimed_until=timezone.now() + PURGE_LEASE
    )
    if not renewed:
        raise ClaimLost(f"erasure {request_id} is no longer this run's: another run took it over.")
    request = ErasureRequest.objects.only("pk", "tenant_id", "status").get(pk=request_id)
    _publish(request, progress=progress)


def renew_purge_lease(*, request_id: Any, claim: uuid.UUID) -> None:
    """Renew the run's lease while it verifies (the scan of a large database may outlast PURGE_LEASE), with the
    statement progress reports use. ClaimLost when another run took the purge over."""
    renewed = ErasureRequest.objects.filter(pk=request_id, claim_token=claim).update(
        claimed_until=timezone.now() + PURGE_LEASE
    )
    if not renewed:
        raise ClaimLost(f"erasure {request_id} is no longer this run's: another run took it over.")


# --- exports (right of access and portability) -----------------------------------------------------------

EXPORT_LEASE = timedelta(minutes=15)


def _publish_export(export: ExportRequest) -> None:
    publish_on_commit(
        [tenant_group(export.tenant_id)],
        {
            "type": "export.updated",
            "tenant": str(export.tenant_id),
            "export": str(export.pk),
            "status": export.status,
            "progress": export.progress,
        },
    )


@transaction.atomic
def file_export(
    *, tenant: Tenant, user_id: str, legal_basis: str, filed_by: str, idempotency_key: str | None = None
) -> ExportRequest:
    """Take a request for everything held about a person; a background job builds the archive.

    An unknown person is fine: the archive then holds empty files. No approval is needed (an export removes
    nothing), but every step is audited and only compliance staff or the tenant's own key can download it.
    The user id is taken exactly as given, as for an erasure. The same `idempotency_key` again
    (api.idempotency.stored_key) files nothing and returns the export filed with it, as it is now; for
    another person or legal basis it is a 422.
    """
    if not user_id.strip() or len(user_id) > 256 or "\x00" in user_id:
        raise ValidationFailed("user_id is 1-256 characters.", details={"field": "user_id"})
    if legal_basis not in LegalBasis.values:
        raise ValidationFailed("Unknown legal basis.", details={"field": "legal_basis", "allowed": LegalBasis.values})
    subject = subject_of(tenant.pk, user_id)
    export, created = _filed_once(
        ExportRequest,
        tenant=tenant,
        idempotency_key=idempotency_key,
        user_id=user_id,
        subject=subject,
        legal_basis=legal_basis,
        filed_by=filed_by,
    )
    if not created:
        if (export.subject, export.legal_basis) != (subject, legal_basis):
            raise _key_used_for_another_request()
        return export
    audit(
        actor=filed_by,
        action="export_filed",
        tenant=tenant,
        subject=export.subject,
        export=export,
        details={"legal_basis": legal_basis},
    )
    _publish_export(export)
    transaction.on_commit(lambda: _queue_export(str(export.pk)), robust=True)
    return export


def _queue_export(export_pk: str) -> None:
    from compliance_app.tasks import build_export

    build_export.delay(export_pk)


def claim_export(*, export_id: Any, worker: str) -> ExportRequest | None:
    """Take the build of an export for EXPORT_LEASE; None when another worker holds it or it is finished.

    As for `claim_purge`, the export returned names the claim (`claim_token`) its build passes on.
    """
    now = timezone.now()
    claimed = (
        ExportRequest.objects.filter(pk=export_id, status__in=[ExportStatus.PENDING, ExportStatus.RUNNING])
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(
            status=ExportStatus.RUNNING,
            claimed_until=now + EXPORT_LEASE,
            claim_token=uuid.uuid4(),
            started_at=now,
            progress={},
        )
    )
    if not claimed:
        return None
    export = ExportRequest.objects.select_related("tenant").get(pk=export_id)
    audit(actor=worker, action="export_started", tenant=export.tenant, subject=export.subject, export=export)
    _publish_export(export)
    return export


def record_export_progress(*, export_id: Any, layer: str, rows: int, claim: uuid.UUID) -> None:
    """A layer of the archive is written: its row count, on the row and to the live page. The same statement
    renews the build's lease. ClaimLost when another build took the export over, or it was withdrawn."""
    export = ExportRequest.objects.defer("archive").get(pk=export_id)
    export.progress = {**export.progress, "layers": {**export.progress.get("layers", {}), layer: rows}, "layer": layer}
    renewed = ExportRequest.objects.filter(pk=export_id, status=ExportStatus.RUNNING, claim_token=claim).update(
        progress=export.progress, claimed_until=timezone.now() + EXPORT_LEASE
    )
    if not renewed:
        raise ClaimLost(f"{export} is no longer this build's: another build took it over, or it was withdrawn.")
    _publish_export(export)


@transaction.atomic
def finish_export(
    *, export_id: Any, archive: bytes, manifest: dict[str, Any], worker: str, claim: uuid.UUID
) -> ExportRequest | None:
    """Store the built archive; it expires EXPORT_EXPIRES_HOURS later. None when the export was withdrawn
    meanwhile (the person was erased while it ran): the archive is dropped. ClaimLost when another build took
    the export over: that build stores its own."""
    import hashlib

    now = timezone.now()
    export = ExportRequest.objects.select_for_update(of=("self",)).select_related("tenant").filter(pk=export_id).first()
    if export is None or export.status != ExportStatus.RUNNING:
        return None
    _refuse_unless_held(export, claim)
    export.status, export.finished_at, export.claimed_until, export.claim_token = ExportStatus.READY, now, None, None
    export.archive, export.archive_bytes = archive, len(archive)
    export.archive_sha256 = hashlib.sha256(archive).hexdigest()
    export.manifest = {key: value for key, value in manifest.items() if key != "user_id"}
    export.expires_at = now + timedelta(hours=settings.EXPORT_EXPIRES_HOURS)
    export.progress = {**export.progress, "layer": None}
    export.save()
    audit(
        actor=worker,
        action="export_generated",
        tenant=export.tenant,
        subject=export.subject,
        export=export,
        details={
            "counts": manifest.get("counts", {}),
            "archive_bytes": len(archive),
            "archive_sha256": export.archive_sha256,
            "expires_at": export.expires_at.isoformat(),
        },
    )
    _publish_export(export)
    return export


@transaction.atomic
def fail_export(*, export_id: Any, reason: str, worker: str, claim: uuid.UUID) -> None:
    """Fail the export with `reason`. ClaimLost when another build took it over: that build decides."""
    export = ExportRequest.objects.select_for_update(of=("self",)).select_related("tenant").filter(pk=export_id).first()
    if export is None or export.status != ExportStatus.RUNNING:
        return
    _refuse_unless_held(export, claim)
    export.status, export.error, export.finished_at, export.claimed_until, export.claim_token = (
        ExportStatus.FAILED,
        reason[:2000],
        timezone.now(),
        None,
        None,
    )
    export.save(update_fields=["status", "error", "finished_at", "claimed_until", "claim_token"])
    audit(
        actor=worker,
        action="export_failed",
        tenant=export.tenant,
        subject=export.subject,
        export=export,
        details={"reason": reason[:500]},
    )
    _publish_export(export)


@transaction.atomic
def download_export(*, export_id: Any, actor: str, tenant: Tenant | None = None) -> tuple[ExportRequest, bytes]:
    """The archive's bytes for `actor`, audited. NotFound for another tenant's export; Conflict while it is
    not ready; Gone (410) once it expired or was withdrawn."""
    rows = ExportRequest.objects.select_for_update(of=("self",)).select_related("tenant").filter(pk=export_id)
    export = rows.filter(tenant=tenant).first() if tenant is not None else rows.first()
    if export is None:
        raise NotFound("No such export request.")
    archive = None if export.archive is None else bytes(export.archive)
    refuse_unless_downloadable(export, archive_bytes=None if archive is None else len(archive))
    assert archive is not None  # refused above otherwise
    export.downloads += 1
    export.save(update_fields=["downloads"])
    audit(
        actor=actor,
        action="export_downloaded",
        tenant=export.tenant,
        subject=export.subject,
        export=export,
        details={"archive_sha256": export.archive_sha256},
    )
    return export, archive


def _expire(export: ExportRequest, *, actor: str, reason: str) -> None:
    export.status, export.archive = ExportStatus.EXPIRED, None
    export.save(update_fields=["status", "archive"])
    audit(
        actor=actor,
        action="export_expired",
        tenant=export.tenant,
        subject=export.subject,
        export=export,
        details={"reason": reason},
    )
    _publish_export(export)


def expire_exports(*, now: Any = None) -> int:
    """Delete the archives of exports past their expiry; returns how many expired."""
    now = now or timezone.now()
    count = 0
    for pk in ExportRequest.objects.filter(status=ExportStatus.READY, expires_at__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            export = (
                ExportRequest.objects.select_for_update(of=("self",))
                .select_related("tenant")
                .defer("archive")
                .get(pk=pk)
            )
            if export.status == ExportStatus.READY:
                _expire(export, actor="system", reason="expired")
                count += 1
    return count


def withdraw_exports(*, tenant: Tenant, subject: str, actor: str) -> int:
    """Inside an erasure's approval: the person's exports, ready or running, are withdrawn at once."""
    count = 0
    live = [ExportStatus.PENDING, ExportStatus.RUNNING, ExportStatus.READY]
    exports = ExportRequest.objects.select_for_update().defer("archive")
    for export in exports.filter(tenant=tenant, subject=subject, status__in=live):
        export.tenant = tenant
        _expire(export, actor=actor, reason="person erased")
        count += 1
    return count
