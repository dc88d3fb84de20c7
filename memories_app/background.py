"""Writes that Celery tasks make: promotion and distillation, the profile outbox, access statistics, decay.

Each is safe to run twice and from several workers at once: jobs are claimed with a conditional UPDATE and
a lease, per-item progress is committed with the item, and the outbox is applied one entry per transaction
under an advisory lock, so every entry takes effect exactly once and in order (or is set aside, recorded as
failed, when it cannot take effect: see `apply_next_outbox_entry`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import redis
import structlog
from django.apps import apps
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from memories_app.embeddings import EmbedderRefused, EmbedderUnavailable, get_embedder
from memories_app.models import (
    HiddenOwner,
    JobKind,
    JobStatus,
    Memory,
    MemoryRevision,
    OutboxOperation,
    ProfileFactOutbox,
    PromotionJob,
    RevisionKind,
    Scope,
    Source,
)
from memories_app.selectors import SearchScope, message_text, search_memories, session_messages
from memories_app.services import announce_created, announce_deleted, announce_updated, memory_source_key_for_fact
from memories_app.text import summarise
from memory_admin.health import redis_client
from memory_admin.live import publish_on_commit, session_group, tenant_group
from sessions_app.models import AgentSession, SessionStatus

logger = structlog.get_logger("memory.memories")

# A worker that crashed mid-job loses its claim after this long, and another worker resumes the job.
JOB_LEASE = timedelta(minutes=5)
# Summaries keep at most this many facts from one session.
DISTILL_MAX_FACTS = 8
# How far back the distillation sweep looks for sessions a client archived (see `sessions_to_distill`).
DISTILL_ARCHIVED_WITHIN = timedelta(days=7)
# A promoted text's near-duplicate that a delete took between the search and the lock is searched past this
# many times (each finds the next one) before the text is added as a memory of its own.
_NEAR_DUPLICATE_SEARCHES = 3
_OUTBOX_LOCK = 0x6D656D6F7574  # "memout": one drainer at a time keeps entries in order
# An outbox entry that keeps failing (not for an outage) is set aside after this many attempts, once it has
# waited this long.
OUTBOX_MAX_ATTEMPTS = 20
OUTBOX_RETRY_WINDOW = timedelta(hours=1)
ACCESS_KEY = "mem:memories:access"
_ACCESS_FLUSHING_PREFIX = "mem:memories:access:flushing:"
# The field of a claimed batch that names the Postgres transaction applying it (not a memory id, which is a
# UUID: `_apply_counts` skips it).
_BATCH_XACT = "xact"
# A flush claims a batch of counts (KEYS[1]) by renaming it to a key of its own (KEYS[2]) that names its
# transaction, in one step: no other flush can claim it after, nor find it claimed without that name.
_CLAIM_BATCH = """
if redis.call('exists', KEYS[1]) == 0 then return {} end
redis.call('rename', KEYS[1], KEYS[2])
redis.call('hset', KEYS[2], ARGV[1], ARGV[2])
return redis.call('hgetall', KEYS[2])
"""


# --- Promotion and distillation ------------------------------------------------------------------------


def claim_job(job_id: uuid.UUID | str) -> PromotionJob | None:
    """Take the job if it is pending or its last worker's lease ran out; None if someone else holds it."""
    now = timezone.now()
    claimed = (
        PromotionJob.objects.filter(pk=job_id)
        .filter(Q(status=JobStatus.PENDING) | Q(status=JobStatus.RUNNING, claimed_until__lt=now))
        .update(status=JobStatus.RUNNING, claimed_until=now + JOB_LEASE, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    return PromotionJob.objects.select_related("session").get(pk=job_id)


def _session_texts(job: PromotionJob) -> list[str]:
    session_memories = Memory.objects.alive().filter(session=job.session, scope=Scope.SESSION)
    wanted = job.request.get("memory_ids") or []
    extra = list(job.request.get("texts") or []) if job.kind == JobKind.PROMOTE else []
    if wanted:
        session_memories = session_memories.filter(pk__in=wanted)
    elif extra:  # only the texts given: the session's memories are promoted when neither is given
        return extra
    texts = list(session_memories.order_by("created_at", "id").values_list("content", flat=True))
    if job.kind == JobKind.PROMOTE:
        return extra + texts
    said = [message_text(message) for message in session_messages(job.session) if message.get("role") == "user"]
    facts, method = summarise(texts + said, max_items=DISTILL_MAX_FACTS)
    job.request = {**job.request, "method": method}
    return facts


def _freeze_items(job: PromotionJob) -> list[str]:
    """The texts this job promotes, fixed at the first attempt so that retries see the same list."""
    items = job.request.get("items")
    if items is None:
        items = [text for text in _session_texts(job) if text.strip()][:1000]
        job.request = {**job.request, "items": items, "done": 0}
        job.save(update_fields=["request"])
    return list(items)


@dataclass(frozen=True)
class PromotionOutcome:
    memory_id: str
    created: bool


def _lock_user(tenant_id: object, user_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"memories:{tenant_id}:{user_id}"])


def _locked_near_duplicate(job: PromotionJob, vector: list[float], model_id: str) -> tuple[Memory, float] | None:
    """The user's live memory most similar to `vector` at MEMORY_DEDUPE_THRESHOLD or above, locked, and its
    score; None when there is none.

    A delete does not take the user's lock, and can commit between the search and the row lock: the row is
    locked only while alive, and when it is gone the search is made again (it no longer finds it).
    """
    session = job.session
    for _ in range(_NEAR_DUPLICATE_SEARCHES):
        nearest = search_memories(
            tenant=session.tenant,
            vector=vector,
            model_id=model_id,
            where=SearchScope(scopes=frozenset({Scope.USER}), user_id=session.user_id),
            k=1,
            min_score=settings.MEMORY_DEDUPE_THRESHOLD,
        )
        if not nearest:
            return None
        memory = Memory.objects.alive().select_for_update().filter(pk=nearest[0].memory.pk).first()
        if memory is not None:
            return memory, nearest[0].score
    return None  # deleted each time they were found: the text becomes a memory of its own


def _promote_one(job: PromotionJob, text: str, vector: list[float]) -> PromotionOutcome | None:
    """Add `text` to the user's scope, or update its near-duplicate there. Caller holds a transaction."""
    session = job.session
    _lock_user(job.tenant_id, session.user_id)
    embedder = get_embedder()
    near_duplicate = _locked_near_duplicate(job, vector, embedder.model_id)
    source = Source.DISTILLATION if job.kind == JobKind.DISTILL else Source.PROMOTION
    if near_duplicate is None:
        memory = Memory.objects.create(
            tenant_id=job.tenant_id,
            scope=Scope.USER,
            user_id=session.user_id,
            session=session,
            content=text,
            embedding=vector,
            embedding_model=embedder.model_id,
            dimensions=embedder.dimensions,
            source=source,
            metadata={"promoted_from_session": session.session_id},
        )
        announce_created([memory])
        return PromotionOutcome(str(memory.pk), created=True)
    memory, score = near_duplicate
    if memory.content == text or memory.source == Source.PROFILE:
        return None  # known already; a profile fact's memory follows the profile, not promotions
    previous = memory.content
    memory.content, memory.embedding = text, vector
    memory.version += 1
    memory.updated_at = timezone.now()
    memory.save()
    MemoryRevision.objects.create(
        memory=memory,
        version=memory.version,
        kind=RevisionKind.PROMOTION,
        actor=f"{job.kind}:{job.pk}",
        previous_content=previous,
        content=text,
        inputs={"session": session.session_id, "score": round(score, 4)},
    )
    announce_updated(memory)
    return PromotionOutcome(str(memory.pk), created=False)


def _embedded(texts: list[str]) -> tuple[list[list[float] | None], str]:
    """A vector per text, None for each text the embedder refuses for good, and its last refusal's reason ("" when
    none): a batch it refuses is embedded again text by text, so that a text over the model's length (a pasted
    document) costs only itself. Raises EmbedderUnavailable."""
    embedder = get_embedder()
    vectors: list[list[float] | None] = []
    refusal = ""
    for start in range(0, len(texts), settings.EMBEDDING_BATCH_SIZE):
        batch = texts[start : start + settings.EMBEDDING_BATCH_SIZE]
        try:
            vectors.extend(embedder.embed(batch))
            continue
        except EmbedderRefused:
            pass
        for text in batch:
            try:
                vectors.append(embedder.embed([text])[0])
            except EmbedderRefused as exc:
                vectors.append(None)
                refusal = str(exc)
    return vectors, refusal


def _skipped(job: PromotionJob, items: list[str]) -> str:
    """What the job's `last_error` says of the texts the embedder refused; "" when it refused none."""
    refused = job.request.get("refused") or []
    if not refused:
        return ""
    which = ", ".join(str(index) for index in refused[:50]) + (", …" if len(refused) > 50 else "")
    return (
        f"The embedder refused {len(refused)} of the {len(items)} texts, which were skipped (their indexes among "
        f"the job's items: {which}). "
        f"{job.request.get('refusal', '')}"
    )[:2000]


def run_promotion(job_id: uuid.UUID | str) -> PromotionJob | None:
    """Do a claimed promotion or distillation job; items already done by an earlier attempt are skipped.

    Raises EmbedderUnavailable after handing the job back (pending), so the task's retry can claim it. A text the
    embedder refuses for good (EmbedderRefused: over its model's length, say) is skipped, as retrying would be
    refused the same way: its index goes to `request["refused"]`, and `last_error` counts the skipped texts with
    the embedder's reason. The job is done when it promoted something, failed when every text was refused.
    """
    job = claim_job(job_id)
    if job is None:
        return None
    try:
        items = _freeze_items(job)
        done = int(job.request.get("done", 0))
        vectors, refusal = _embedded(items[done:])
    except EmbedderUnavailable as exc:
        # Give the claim back so that the task's retry (or the resume sweep) can take the job at once.
        PromotionJob.objects.filter(pk=job.pk).update(
            status=JobStatus.PENDING, claimed_until=None, last_error=str(exc)[:2000]
        )
        raise
    for offset, (text, vector) in enumerate(zip(items[done:], vectors, strict=True)):
        with transaction.atomic():
            outcome = None
            if vector is None:
                refused = [*(job.request.get("refused") or []), done + offset]
                job.request = {**job.request, "refused": refused, "refusal": refusal}
            else:
                outcome = _promote_one(job, text, vector)
            job.request = {**job.request, "done": done + offset + 1}
            if outcome is not None:
                (job.created_ids if outcome.created else job.updated_ids).append(outcome.memory_id)
            job.save(update_fields=["request", "created_ids", "updated_ids"])
    every_text_refused = bool(items) and len(job.request.get("refused") or []) == len(items)
    with transaction.atomic():
        job.status = JobStatus.FAILED if every_text_refused else JobStatus.DONE
        job.finished_at, job.claimed_until, job.last_error = timezone.now(), None, _skipped(job, items)
        job.save(update_fields=["status", "finished_at", "claimed_until", "last_error"])
        if every_text_refused:
            return job
        publish_on_commit(
            [tenant_group(job.tenant_id), session_group(job.session_id)],
            {
                "type": "promotion.finished",
                "tenant": str(job.tenant_id),
                "session": job.session.session_id,
                "job": str(job.pk),
                "kind": job.kind,
                "created": len(job.created_ids),
                "updated": len(job.updated_ids),
            },
        )
    return job


def unfinished_jobs(limit: int = 100) -> list[str]:
    """Jobs a lost broker message or a crashed worker left behind."""
    now = timezone.now()
    stale = PromotionJob.objects.filter(
        Q(status=JobStatus.PENDING, created_at__lt=now - timedelta(seconds=30))
        | Q(status=JobStatus.RUNNING, claimed_until__lt=now)
    )
    return [str(pk) for pk in stale.order_by("created_at").values_list("pk", flat=True)[:limit]]


def sessions_to_distill(limit: int = 100) -> list[AgentSession]:
    """Sessions without a distillation that are completed, or that a client archived from completed within
    DISTILL_ARCHIVED_WITHIN: a session completed and archived at once was never seen completed by this sweep.

    A session archived from another status (failed, active, paused) is not distilled, as it would not have been
    unarchived; one archived before the status it came from was recorded (`archived_from` blank) is. The window
    keeps the sweep from reaching back to sessions archived long ago, and the lifecycle's archival (sessions
    unused for months, which a completed session reaches long after this sweep distilled it) is left out.
    """
    session_archival = apps.get_model("lifecycle_app", "SessionArchival")  # lifecycle_app depends on this app
    archived_by_a_client = Q(
        status=SessionStatus.ARCHIVED,
        archived_from__in=[SessionStatus.COMPLETED, ""],
        updated_at__gte=timezone.now() - DISTILL_ARCHIVED_WITHIN,
    ) & ~Q(Exists(session_archival.objects.filter(session_id=OuterRef("pk"))))
    return list(
        AgentSession.objects.filter(Q(status=SessionStatus.COMPLETED) | archived_by_a_client)
        .exclude(promotion_jobs__kind=JobKind.DISTILL)
        .order_by("updated_at")[:limit]
    )


# --- Profile facts -> memories (the outbox) ------------------------------------------------------------


def _apply_fact(entry: ProfileFactOutbox) -> None:
    if HiddenOwner.objects.filter(tenant_id=entry.tenant_id, user_id=entry.user_id).exists():
        # The person's erasure was approved: their memories are hidden until the purge deletes them (and
        # this entry with them). Writing one now would collide with the hidden row's key, and the error
        # would hold up every later entry of every tenant.
        return
    source_key = memory_source_key_for_fact(entry.fact_key)
    memory = (
        Memory.objects.alive()
        .select_for_update()
        .filter(tenant_id=entry.tenant_id, user_id=entry.user_id, source_key=source_key)
        .first()
    )
    if entry.operation == OutboxOperation.DELETE:
        if memory is not None:
            memory.deleted_at = timezone.now()
            memory.save(update_fields=["deleted_at"])
            announce_deleted(memory)
        return
    if memory is not None and memory.content == entry.content:
        return
    embedder = get_embedder()
    vector = embedder.embed([entry.content])[0]
    if memory is None:
        created = Memory.objects.create(
            tenant_id=entry.tenant_id,
            scope=Scope.USER,
            user_id=entry.user_id,
            content=entry.content,
            embedding=vector,
            embedding_model=embedder.model_id,
            dimensions=embedder.dimensions,
            source=Source.PROFILE,
            source_key=source_key,
            metadata={"profile_fact": entry.fact_key},
        )
        announce_created([created])
        return
    previous = memory.content
    memory.content, memory.embedding = entry.content, vector
    memory.embedding_model, memory.dimensions = embedder.model_id, embedder.dimensions
    memory.version += 1
    memory.updated_at = timezone.now()
    memory.save()
    MemoryRevision.objects.create(
        memory=memory,
        version=memory.version,
        kind=RevisionKind.PROFILE,
        actor=f"profile-outbox:{entry.pk}",
        previous_content=previous,
        content=entry.content,
    )
    announce_updated(memory)


def apply_next_outbox_entry() -> bool:
    """Apply the oldest unprocessed outbox entry and mark it processed in the same transaction.

    False when the outbox is empty. An entry that cannot be applied is recorded with its error, and then
    either set aside (processed and failed, so the next entry's turn comes; True) when the embedder refused its
    text for good, or when it has failed OUTBOX_MAX_ATTEMPTS times and waited OUTBOX_RETRY_WINDOW for another
    reason than an outage; or left, with everything after it, for a retry: the error is raised (an outage of
    the embedder or the database is waited out however long it lasts, and costs no fact).
    """
    entry: ProfileFactOutbox | None = None
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_OUTBOX_LOCK])
            entry = ProfileFactOutbox.objects.filter(processed_at__isnull=True).order_by("id").first()
            if entry is None:
                return False
            _apply_fact(entry)
            entry.processed_at = timezone.now()
            entry.save(update_fields=["processed_at"])
            return True
    except Exception as exc:
        if entry is None or not _record_failure(entry, exc):
            raise
        return True


def _record_failure(entry: ProfileFactOutbox, exc: Exception) -> bool:
    """Count the failed attempt and keep its error on the entry; True when the entry was set aside."""
    now = timezone.now()
    # An outage (the embedder or the database away) fails every entry alike and ends: nothing is set aside
    # for it, however long it lasts. What fails on its own (a refused text; an error only this entry meets)
    # would hold up every later entry for ever.
    outage = isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, EmbedderUnavailable) and not isinstance(exc, EmbedderRefused)
    )
    set_aside = isinstance(exc, EmbedderRefused) or (
        not outage and entry.attempts + 1 >= OUTBOX_MAX_ATTEMPTS and entry.created_at <= now - OUTBOX_RETRY_WINDOW
    )
    error = str(exc) if isinstance(exc, EmbedderUnavailable) else f"{type(exc).__name__}: {exc}"
    done = {"processed_at": now, "failed_at": now} if set_aside else {}
    ProfileFactOutbox.objects.filter(pk=entry.pk, processed_at__isnull=True).update(
        attempts=F("attempts") + 1, last_error=error[:2000], **done
    )
    if set_aside:
        logger.warning(
            "profile_outbox_entry_set_aside", entry=entry.pk, attempts=entry.attempts + 1, error=type(exc).__name__
        )
    return set_aside


# --- Access statistics ---------------------------------------------------------------------------------


def record_access(memory_ids: list[str]) -> None:
    """Count reads in Redis (one pipelined round trip); `flush_access_stats` writes them to Postgres.

    Counts are advisory: when Redis is down or flushed, some are lost, never the memories.
    """
    if not memory_ids:
        return
    try:
        pipe = redis_client().pipeline(transaction=False)
        for memory_id in memory_ids:
            pipe.hincrby(ACCESS_KEY, memory_id, 1)
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("access_stats_dropped", error=type(exc).__name__)


def flush_access_stats() -> int:
    """Add the counted reads to access_count and last_accessed_at; returns memories touched.

    Each batch of counts is added once, however flushes overlap (the beat's and the eviction job's) or die: a
    flush claims a batch before applying it, renaming it to a key of its own that names the transaction that
    applies it, and deletes that key once the transaction committed. A claimed batch found left behind belongs
    to its flush while that transaction runs; once it committed the batch is only deleted (its flush died, or
    Redis failed it, before the delete); once it rolled back (its flush or its database connection died) the
    batch is claimed and applied again.
    """
    client = redis_client()
    touched = 0
    for key in client.scan_iter(match=f"{_ACCESS_FLUSHING_PREFIX}*"):
        xact = client.hget(key, _BATCH_XACT)
        status = _transaction_status(_text(xact)) if xact is not None else "aborted"  # none: left by an older flush
        if status == "aborted":
            touched += _apply_batch(client, _text(key))
        elif status != "in progress":
            # Committed; or a transaction Postgres no longer knows, too old to be running: taken as applied.
            client.delete(key)
    return touched + _apply_batch(client, ACCESS_KEY)


def _apply_batch(client: redis.Redis, key: str) -> int:
    """Claim the batch of counts at `key` and apply it in one transaction; its claimed key goes after the commit."""
    if not client.exists(key):
        return 0
    claimed = f"{_ACCESS_FLUSHING_PREFIX}{uuid.uuid4().hex}"
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text")
            xact = cursor.fetchone()[0]
        fields = client.register_script(_CLAIM_BATCH)(keys=[key, claimed], args=[_BATCH_XACT, xact])
        if not fields:  # another flush claimed it first
            return 0
        touched = _apply_counts(
            {_text(name): int(value) for name, value in zip(fields[::2], fields[1::2], strict=True)}
        )
        # Left behind when this fails (Redis away): the next flush finds the transaction committed and deletes it.
        transaction.on_commit(lambda: client.delete(claimed), robust=True)
    return touched


def _transaction_status(xact: str) -> str | None:
    """'in progress', 'committed' or 'aborted'; None for a transaction too old for Postgres to know its outcome,
    or one it never ran (the database was re-created under the same Redis), which pg_xact_status refuses.

    Only an id from the future is left out, by comparing with a new one (this statement's own): a snapshot's xmax
    is one past the newest *finished* transaction, which a transaction still running is often at or past.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN x < pg_current_xact_id() THEN pg_xact_status(x) END "
            "FROM (SELECT %s::xid8 AS x) AS claimed",
            [xact],
        )
        status: str | None = cursor.fetchone()[0]
        return status


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _apply_counts(counts: dict[str, int]) -> int:
    valid = {}
    for name, value in counts.items():
        try:
            valid[str(uuid.UUID(name))] = value
        except ValueError:
            continue
    if not valid:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE memories_app_memory AS m SET access_count = m.access_count + v.n, last_accessed_at = now() "
            "FROM unnest(%s::uuid[], %s::int[]) AS v(id, n) WHERE m.id = v.id",
            [list(valid), list(valid.values())],
        )
        return int(cursor.rowcount)


# --- Decay and purge -----------------------------------------------------------------------------------


def evict_decayed(*, batch: int = 1000) -> int:
    """Logically delete memories whose decay weight fell below MEMORY_EVICTION_THRESHOLD.

    Profile-fact memories are kept: the profile owns them, and removing a fact is how they go.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE memories_app_memory SET deleted_at = now() WHERE id IN ("
            " SELECT id FROM memories_app_memory WHERE deleted_at IS NULL AND source <> %s"
            " AND power(2, -extract(epoch FROM now() - greatest(last_accessed_at, updated_at, created_at))"
            "     / 86400.0 / %s) * ln(2 + access_count) < %s"
            " LIMIT %s FOR UPDATE SKIP LOCKED)",
            [Source.PROFILE, settings.MEMORY_DECAY_HALF_LIFE_DAYS, settings.MEMORY_EVICTION_THRESHOLD, batch],
        )
        return int(cursor.rowcount)


def purge_deleted(*, batch: int = 1000) -> int:
    """Physically remove memories deleted more than MEMORY_PURGE_AFTER_HOURS ago (vectors included), as the
    lifecycle purge does (which beat runs in its place): one kept for a retry of its keyed create stays."""
    from lifecycle_app.purge import purge_memories_step

    cutoff = timezone.now() - timedelta(hours=settings.MEMORY_PURGE_AFTER_HOURS)
    return purge_memories_step(cutoff=cutoff, limit=batch)
