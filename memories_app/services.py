"""Writes to long-term memory that agents ask for through the API.

Every write validates before it stores anything, computes embeddings before it opens the row for writing
(so an embedder outage is a 503 with nothing stored), and publishes live updates after commit. Work that
runs in the background (promotion, profile sync, access statistics, decay) is in `memories_app.background`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from memories_app import erased_keys
from memories_app.embeddings import EmbedderRefused, EmbedderUnavailable, get_embedder
from memories_app.embeddings.base import vector_problem
from memories_app.fields import vector_text
from memories_app.models import (
    HiddenOwner,
    JobKind,
    Memory,
    MemoryRevision,
    PromotionJob,
    RevisionKind,
    Scope,
    Source,
    UserProfile,
)
from memories_app.text import merge_texts
from memory_admin.codec import canonical_json
from memory_admin.errors import (
    Conflict,
    Erased,
    NotFound,
    PreconditionFailed,
    Unavailable,
    Unprocessable,
    ValidationFailed,
)
from memory_admin.live import publish_all_on_commit, publish_on_commit, session_group, tenant_group
from memory_admin.redis_guard import queue_task
from memory_admin.sql import as_jsonb
from sessions_app.models import AgentSession
from tenants_app import keycache
from tenants_app.models import Tenant

MAX_USER_ID_CHARS = 256


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed("The request did not validate.", details={"fields": {field: [message]}})


class StaleVersion(PreconditionFailed):
    """The resource changed since the caller read it; `current` is the stored row."""

    def __init__(self, current: Memory | UserProfile) -> None:
        super().__init__("The resource changed since you read it.", details={"current_version": current.version})
        self.current = current


@dataclass(frozen=True)
class NewMemory:
    """One memory to create, as the API received it."""

    scope: str
    content: str
    user_id: str = ""
    session_id: str = ""
    metadata: dict[str, Any] | None = None
    embedding: list[float] | None = None


@dataclass(frozen=True)
class _Owner:
    scope: str
    user_id: str
    session: AgentSession | None


def clean_content(content: str, *, field: str = "content") -> str:
    if not isinstance(content, str) or not content.strip():
        raise _invalid(field, "Content may not be empty.")
    if len(content) > settings.MEMORY_MAX_CONTENT_CHARS:
        raise _invalid(
            field, f"Content is {len(content)} characters; the limit is {settings.MEMORY_MAX_CONTENT_CHARS}."
        )
    return content


def clean_metadata(metadata: dict[str, Any] | None, *, field: str = "metadata") -> dict[str, Any]:
    """The metadata as its jsonb column will keep it (memory_admin.sql.as_jsonb), within the size limit as sent
    and as kept."""
    if metadata is None:
        return {}
    _check_metadata_size(metadata, field)  # as sent, first: bounds what PostgreSQL is asked to spell out
    kept = as_jsonb(metadata)
    if kept is not metadata:
        _check_metadata_size(kept, field)
    return kept


def _check_metadata_size(metadata: dict[str, Any], field: str) -> None:
    size = len(json.dumps(metadata, separators=(",", ":")).encode())
    if size > settings.MEMORY_MAX_METADATA_BYTES:
        raise _invalid(field, f"Metadata is {size} bytes; the limit is {settings.MEMORY_MAX_METADATA_BYTES}.")


def clean_vector(vector: Sequence[float], *, dimensions: int, field: str = "embedding") -> list[float]:
    """A client-supplied vector of the active embedder's dimension, stored and compared as given: checked on
    the float4 values pgvector keeps (finite, not all zeros, of a length cosine arithmetic in float4 can
    handle; see `vector_problem`)."""
    if len(vector) != dimensions:
        raise _invalid(field, f"The vector has {len(vector)} dimensions; this service's embedder uses {dimensions}.")
    values = [float(value) for value in vector]
    problem = vector_problem(values)
    if problem is not None:
        raise _invalid(field, problem[0].upper() + problem[1:] + ".")
    return values


def clean_user_id(user_id: str, *, field: str = "user_id") -> str:
    if not user_id or not user_id.strip() or len(user_id) > MAX_USER_ID_CHARS:
        raise _invalid(field, f"A user id is 1-{MAX_USER_ID_CHARS} characters.")
    return user_id


def embed_texts(texts: Sequence[str]) -> list[list[float]]:
    """Vectors from the active embedder; Unavailable (503) saying why it cannot answer, or Unprocessable (422,
    with the embedder's reason) when it refuses the texts themselves, which a retry would not change."""
    if not texts:
        return []
    try:
        return get_embedder().embed(texts)
    except EmbedderRefused as exc:
        raise Unprocessable(str(exc), details={"layer": "embeddings"}) from exc
    except EmbedderUnavailable as exc:
        raise Unavailable(str(exc), details={"layer": "embeddings"}) from exc


def _owner(tenant: Tenant, item: NewMemory, *, prefix: str = "") -> _Owner:
    """Check scope, user and session agree, and that the session is the tenant's."""
    scope, user_id, session_id = item.scope, item.user_id or "", item.session_id or ""
    if scope not in Scope.values:
        raise _invalid(f"{prefix}scope", f"Unknown scope; use one of {', '.join(Scope.values)}.")
    if scope == Scope.GLOBAL:
        if user_id or session_id:
            raise _invalid(f"{prefix}scope", "Global memories belong to no user or session.")
        return _Owner(scope, "", None)
    session = None
    if session_id:
        session = AgentSession.objects.filter(tenant=tenant, session_id=session_id).first()
        if session is None:
            raise _invalid(f"{prefix}session_id", "No such session.")
        if user_id and user_id != session.user_id:
            raise _invalid(f"{prefix}session_id", "The session belongs to another user.")
        user_id = session.user_id
    elif scope == Scope.SESSION:
        raise _invalid(f"{prefix}session_id", "A session memory needs its session_id.")
    return _Owner(scope, clean_user_id(user_id, field=f"{prefix}user_id"), session)


def announce_created(memories: Sequence[Memory]) -> None:
    """Tell the dashboard, once the transaction commits, of new memories (see memory_admin.live)."""
    messages = []
    for memory in memories:
        tenant = str(memory.tenant_id)
        groups = [tenant_group(tenant)]
        if memory.session_id is not None:
            groups.append(session_group(memory.session_id))
        message = {"type": "memory.created", "tenant": tenant, "memory": str(memory.pk), "scope": memory.scope}
        messages.append((groups, message))
    publish_all_on_commit(messages)


def announce_updated(memory: Memory) -> None:
    tenant = str(memory.tenant_id)
    publish_on_commit(
        [tenant_group(tenant)],
        {"type": "memory.updated", "tenant": tenant, "memory": str(memory.pk), "version": memory.version},
    )


def announce_deleted(memory: Memory) -> None:
    tenant = str(memory.tenant_id)
    publish_on_commit([tenant_group(tenant)], {"type": "memory.deleted", "tenant": tenant, "memory": str(memory.pk)})


def create_memories(*, tenant: Tenant, items: Sequence[NewMemory], idempotency_key: str | None = None) -> list[Memory]:
    """Store several memories at once, all or none, embedding the texts that came without a vector in one call.

    Raises ValidationFailed (400, naming the item and field) for a bad scope, an unknown or foreign session,
    empty or oversized content or metadata, or a vector of the wrong dimension; Unavailable (503) when the
    embedder is down; Unprocessable (422) when it refuses a text (too long for its model, say). Nothing is
    stored in any case.

    The same `idempotency_key` again (api.idempotency.stored_key: the tenant's key for this endpoint) stores
    nothing and returns the memories the first request stored, as they are now (those deleted since and
    purged are left out); with other items it is a 422, and Erased (410) once their owner's erasure was
    approved, also after it purged them (for the tenant's idempotency lifetime, see `keep_erased_request_keys`).
    Concurrent requests with one key store once: the second waits for the first's rows.
    """
    if not items:
        raise _invalid("memories", "Send at least one memory.")
    if len(items) > settings.MEMORY_BATCH_MAX:
        raise _invalid("memories", f"At most {settings.MEMORY_BATCH_MAX} memories per batch.")
    embedder = get_embedder()
    batch = len(items) > 1
    owners, contents, metadatas, vectors = [], [], [], []
    for index, item in enumerate(items):
        prefix = f"memories[{index}]." if batch else ""
        owners.append(_owner(tenant, item, prefix=prefix))
        contents.append(clean_content(item.content, field=f"{prefix}content"))
        metadatas.append(clean_metadata(item.metadata, field=f"{prefix}metadata"))
        vectors.append(
            None
            if item.embedding is None
            else clean_vector(item.embedding, dimensions=embedder.dimensions, field=f"{prefix}embedding")
        )
    missing = [index for index, vector in enumerate(vectors) if vector is None]
    for index, vector in zip(missing, embed_texts([contents[index] for index in missing]), strict=True):
        vectors[index] = vector
    now = timezone.now()
    fingerprint = _fingerprint(items) if idempotency_key else None
    memories = [
        Memory(
            tenant=tenant,
            scope=owner.scope,
            user_id=owner.user_id,
            session=owner.session,
            content=content,
            embedding=vector,
            embedding_model=embedder.model_id,
            dimensions=embedder.dimensions,
            metadata=metadata,
            created_at=now,
            updated_at=now,
            idempotency_key=f"{idempotency_key}:{index}" if idempotency_key else None,
            request_fingerprint=fingerprint,
        )
        for index, (owner, content, metadata, vector) in enumerate(
            zip(owners, contents, metadatas, vectors, strict=True)
        )
    ]
    # A retry whose memories an erasure purged, all of them: nothing else refuses it (see erased_keys).
    epoch = keycache.fresh_epoch() if idempotency_key is not None else None
    if idempotency_key is not None and erased_keys.is_erased(tenant.pk, idempotency_key, epoch=epoch, cached=True):
        raise _erased_with_key()
    try:
        _insert(memories, keyed=idempotency_key is not None)
    except IntegrityError as exc:
        if idempotency_key is None or _violated(exc) != "memory_idempotency_key":
            raise
        return _stored_with(tenant, idempotency_key, fingerprint, count=len(memories))
    if idempotency_key is not None and _purged_meanwhile(tenant, idempotency_key, epoch):
        Memory.objects.filter(pk__in=[memory.pk for memory in memories]).delete()
        raise _erased_with_key()
    announce_created(memories)
    return memories


def _purged_meanwhile(tenant: Tenant, idempotency_key: str, epoch: bytes | None) -> bool:
    """Whether an erasure's purge kept this key between the check before the INSERT and now. The purge keeps
    the keys, then replaces the epoch, then deletes the rows that would have refused the INSERT: a purge that
    deleted them after the check replaced the epoch first, and one that had not deleted them yet made the INSERT
    fail on their key. One read of the epoch when it did not change (without Redis, the lookup)."""
    if epoch is not None and keycache.fresh_epoch() == epoch:
        return False
    return erased_keys.is_erased(tenant.pk, idempotency_key)


def _insert(memories: list[Memory], *, keyed: bool) -> None:
    """IntegrityError, with nothing stored, when a keyed row's key is taken (once that row's request committed)."""
    if len(memories) == 1:
        # One row is one autocommit INSERT: no BEGIN and COMMIT round trips. Inside a caller's transaction it
        # joins that transaction, under a savepoint when a taken key may refuse it (the caller's goes on).
        with transaction.atomic() if keyed and connection.in_atomic_block else nullcontext():
            memories[0].save(force_insert=True)
    else:
        with transaction.atomic():
            if not _copy_in(memories):
                Memory.objects.bulk_create(memories)


def _fingerprint(items: Sequence[NewMemory]) -> str:
    """What a request asked to store, whatever its JSON looked like: the same items give the same hash."""
    asked = [
        {
            "scope": item.scope,
            "content": item.content,
            "user_id": item.user_id or "",
            "session_id": item.session_id or "",
            "metadata": item.metadata or {},
            "embedding": item.embedding,
        }
        for item in items
    ]
    return hashlib.sha256(canonical_json(asked)).hexdigest()


def _violated(error: IntegrityError) -> str | None:
    """The name of the constraint an INSERT broke (psycopg's diagnostics), if it says."""
    diagnostics = getattr(error.__cause__, "diag", None)
    return getattr(diagnostics, "constraint_name", None)


def _erased_with_key() -> Erased:
    return Erased("The memories stored with this Idempotency-Key belonged to a person who was erased.")


def _stored_with(tenant: Tenant, idempotency_key: str, fingerprint: str | None, *, count: int) -> list[Memory]:
    """The memories the first request with this key stored, in its order. That request asked for something
    else: 422, however long ago it was sent (the Redis record of its answer, which says the same, may have
    expired or been lost; this is the check that outlives it). Some of them belonged to a person who was
    erased: 410, before their erasure's purge (their rows are hidden) and after it (their key was kept)."""
    keys = [f"{idempotency_key}:{index}" for index in range(count)]
    stored = {
        memory.idempotency_key: memory
        for memory in Memory.objects.select_related("session").filter(tenant=tenant, idempotency_key__in=keys)
    }
    if any(memory.request_fingerprint != fingerprint for memory in stored.values()):
        raise Unprocessable(
            "This Idempotency-Key was already used with a different request body.",
            details={"header": "Idempotency-Key"},
        )
    if len(stored) < count and erased_keys.is_erased(tenant.pk, idempotency_key):
        raise _erased_with_key()
    if not stored:  # purged between the refused INSERT and this read
        raise Conflict("The memories stored with this Idempotency-Key were just removed; send it again.")
    owners = {memory.user_id for memory in stored.values()}
    if HiddenOwner.objects.filter(tenant=tenant, user_id__in=owners).exists():
        raise _erased_with_key()
    return [stored[key] for key in keys if key in stored]


# What a new memory sets; the rest (last access, deletion) starts NULL.
_COPY_COLUMNS = (
    "id", "tenant_id", "scope", "user_id", "session_id", "content", "embedding", "embedding_model", "dimensions",
    "metadata", "source", "source_key", "access_count", "version", "created_at", "updated_at", "idempotency_key",
    "request_fingerprint",
)  # fmt: skip
_COPY_SQL = f"COPY {Memory._meta.db_table} ({', '.join(_COPY_COLUMNS)}) FROM STDIN"


def _copy_in(memories: Sequence[Memory]) -> bool:
    """Store new memories with COPY (the caller holds a transaction): a batch of 200 spends less than half the
    CPU of Django's bulk INSERT, which prepares each of 18 fields per row and sends a 3,600-parameter query.
    False, with nothing written, when a vector has no quick text form (pgvector's path then explains)."""
    vectors = [vector_text(memory.embedding) for memory in memories]
    if any(text is None for text in vectors):
        return False
    # (COPY's errors are psycopg's own: Django's wrapper turns them into its own, a taken key an IntegrityError.)
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.copy(_COPY_SQL) as copy:
        for memory, vector in zip(memories, vectors, strict=True):
            copy.write_row(
                (
                    memory.pk, memory.tenant_id, memory.scope, memory.user_id, memory.session_id, memory.content,
                    vector, memory.embedding_model, memory.dimensions, json.dumps(memory.metadata), memory.source,
                    memory.source_key, memory.access_count, memory.version, memory.created_at, memory.updated_at,
                    memory.idempotency_key, memory.request_fingerprint,
                )
            )  # fmt: skip
    for memory in memories:
        memory._state.adding = False
        memory._state.db = connection.alias
    return True


def create_memory(*, tenant: Tenant, item: NewMemory, idempotency_key: str | None = None) -> Memory:
    """Store one memory; see `create_memories` for what can go wrong and what a key does."""
    return create_memories(tenant=tenant, items=[item], idempotency_key=idempotency_key)[0]


def _locked_memory(tenant: Tenant, memory_id: uuid.UUID | str) -> Memory:
    try:
        key = uuid.UUID(str(memory_id))
    except ValueError:
        raise NotFound("No such memory.", details={"memory_id": str(memory_id)}) from None
    memory = Memory.objects.alive().select_for_update().filter(tenant=tenant, pk=key).first()
    if memory is None:
        raise NotFound("No such memory.", details={"memory_id": str(memory_id)})
    return memory


def _refuse_profile_owned(memory: Memory) -> None:
    """A memory that mirrors a profile fact changes with the fact: edited or deleted on its own, it would
    disagree with the profile until the fact next changed, and then be overwritten or come back."""
    if memory.source == Source.PROFILE:
        raise Conflict(
            "This memory mirrors a fact of the user's profile; change or remove the fact instead.",
            details={
                "memory_id": str(memory.pk),
                "user_id": memory.user_id,
                "profile_fact": memory.source_key.removeprefix(PROFILE_SOURCE_PREFIX),
            },
        )


@dataclass(frozen=True)
class UpdateOutcome:
    memory: Memory
    merged: bool


@transaction.atomic
def update_memory(
    *,
    tenant: Tenant,
    memory_id: uuid.UUID | str,
    actor: str,
    expected_versions: set[int] | None,
    content: str | None = None,
    metadata: dict[str, Any] | None = None,
    merge_on_conflict: bool = False,
) -> UpdateOutcome:
    """Change a memory's content (re-embedded) and/or replace its metadata; its version goes up by one.

    `expected_versions` (from If-Match) makes the update conditional: when the memory changed since, the
    caller gets StaleVersion (412, with the current memory) unless it asked to merge, in which case the
    stored and the sent content are merged (by the chat model when configured, deterministically otherwise)
    and the merge is recorded in the memory's history with both inputs; metadata is not merged, so a stale
    update that would change it is a 412 even then. NotFound for another tenant's or a deleted memory;
    Conflict for a memory that mirrors a profile fact (it changes with the fact); ValidationFailed for bad
    content or metadata; Unavailable when the embedder (or the chat model asked to merge) is down,
    Unprocessable when the embedder refuses the new content; nothing is changed then.
    """
    if content is None and metadata is None:
        raise _invalid("content", "Send content, metadata, or both.")
    if content is not None:
        clean_content(content)
    if metadata is not None:
        metadata = clean_metadata(metadata)
    memory = _locked_memory(tenant, memory_id)
    _refuse_profile_owned(memory)
    stale = expected_versions is not None and memory.version not in expected_versions
    # Only texts are merged: metadata sent on a stale version would replace what the other writer set. And only
    # against a version the caller read: an If-Match naming none of this API's versions has no base to merge on.
    changes_metadata = metadata is not None and canonical_json(metadata) != canonical_json(memory.metadata)
    mergeable = merge_on_conflict and content is not None and not changes_metadata and bool(expected_versions)
    if stale and not mergeable:
        raise StaleVersion(memory)
    previous = memory.content
    kind, inputs = RevisionKind.UPDATE, {}
    if stale and content is not None:
        try:
            result = merge_texts(memory.content, content)
        except EmbedderUnavailable as exc:
            raise Unavailable(str(exc), details={"layer": "language_model"}) from exc
        clean_content(result.text)
        kind = RevisionKind.MERGE
        inputs = {
            "current": memory.content,
            "current_version": memory.version,
            "incoming": content,
            "incoming_based_on": sorted(expected_versions or ()),
            "method": result.method,
        }
        content = result.text
    if content is not None and content != memory.content:
        memory.embedding = embed_texts([content])[0]
        embedder = get_embedder()
        memory.embedding_model, memory.dimensions = embedder.model_id, embedder.dimensions
        memory.content = content
    if metadata is not None:
        memory.metadata = metadata
    memory.version += 1
    memory.updated_at = timezone.now()
    memory.save()
    if memory.content != previous or kind == RevisionKind.MERGE:
        MemoryRevision.objects.create(
            memory=memory,
            version=memory.version,
            kind=kind,
            actor=actor,
            previous_content=previous,
            content=memory.content,
            inputs=inputs,
        )
    announce_updated(memory)
    return UpdateOutcome(memory, kind == RevisionKind.MERGE)


@transaction.atomic
def delete_memory(*, tenant: Tenant, memory_id: uuid.UUID | str, expected_versions: set[int] | None) -> None:
    """Delete logically: the memory disappears from every read at once; the purge job removes the row later.

    NotFound for an unknown, foreign or already deleted memory; Conflict for one that mirrors a profile fact
    (remove the fact instead); StaleVersion (412) when If-Match disagrees.
    """
    memory = _locked_memory(tenant, memory_id)
    _refuse_profile_owned(memory)
    if expected_versions is not None and memory.version not in expected_versions:
        raise StaleVersion(memory)
    memory.deleted_at = timezone.now()
    memory.save(update_fields=["deleted_at"])
    announce_deleted(memory)


def hide_owner(*, tenant: Tenant, user_id: str) -> None:
    """Make every memory of this person invisible at once (their erasure was approved); see HiddenOwner."""
    HiddenOwner.objects.get_or_create(tenant=tenant, user_id=user_id)


def release_hidden_owner(*, tenant: Tenant, user_id: str) -> int:
    """Drop the marker once the person's memories are physically gone (the purge's last step for them)."""
    deleted, _ = HiddenOwner.objects.filter(tenant=tenant, user_id=user_id).delete()
    return deleted


def _enqueue_promotion(job: PromotionJob) -> None:
    from memories_app.tasks import run_promotion_job

    # The job is a durable row that beat's resume_promotions picks up: a down broker must not fail the write.
    transaction.on_commit(lambda: queue_task(run_promotion_job, str(job.pk)))


@transaction.atomic
def request_promotion(
    *, tenant: Tenant, session: AgentSession, memory_ids: Sequence[str] = (), texts: Sequence[str] = ()
) -> PromotionJob:
    """Queue the promotion of a session's knowledge to its user's scope; a worker does it after commit.

    Promotes the given session memories and texts, or every session memory of the session when neither is
    given. A near-duplicate of an existing user memory updates it instead of adding a second. Raises
    ValidationFailed for ids that are not this session's live session memories or for bad texts.
    """
    for index, text in enumerate(texts):
        clean_content(text, field=f"texts[{index}]")
    if memory_ids:
        keys = []
        for index, raw in enumerate(memory_ids):
            try:
                keys.append(uuid.UUID(str(raw)))
            except ValueError:
                raise _invalid(f"memory_ids[{index}]", "Not a memory id.") from None
        found = set(
            Memory.objects.alive()
            .filter(tenant=tenant, session=session, scope=Scope.SESSION, pk__in=keys)
            .values_list("pk", flat=True)
        )
        unknown = [str(key) for key in keys if key not in found]
        if unknown:
            raise ValidationFailed(
                "Some memory ids are not session memories of this session.",
                details={"fields": {"memory_ids": ["Unknown ids."]}, "unknown": unknown},
            )
    job = PromotionJob.objects.create(
        tenant=tenant,
        session=session,
        kind=JobKind.PROMOTE,
        request={"memory_ids": [str(key) for key in memory_ids], "texts": list(texts)},
    )
    _enqueue_promotion(job)
    return job


@transaction.atomic
def request_distillation(*, session: AgentSession) -> PromotionJob:
    """Queue the distillation of a session into its user's scope; at most one per session (the existing job
    is returned on a second call)."""
    existing = PromotionJob.objects.filter(session=session, kind=JobKind.DISTILL).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            job = PromotionJob.objects.create(tenant_id=session.tenant_id, session=session, kind=JobKind.DISTILL)
    except IntegrityError:  # another caller queued it between our read and insert
        return PromotionJob.objects.get(session=session, kind=JobKind.DISTILL)
    _enqueue_promotion(job)
    return job


PROFILE_SOURCE_PREFIX = "profile:"


def memory_source_key_for_fact(fact_key: str) -> str:
    return f"{PROFILE_SOURCE_PREFIX}{fact_key}"


__all__ = [
    "NewMemory",
    "Source",
    "StaleVersion",
    "create_memories",
    "create_memory",
    "delete_memory",
    "request_distillation",
    "request_promotion",
    "update_memory",
]
