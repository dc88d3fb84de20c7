"""Reads of long-term memory, always within the caller's tenant.

Search strategy: results for one user (session and user scopes) are an exact scan over that user's rows,
found through the `memory_owner_alive` b-tree index and ordered by true cosine distance, so they are exact
however many memories other users hold. Global memories are scanned exactly too while a tenant holds at
most MEMORY_EXACT_SEARCH_MAX_ROWS of them; beyond that the HNSW index answers, with pgvector's iterative
index scan so that the tenant filter cannot starve the result.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, VectorField

from memories_app.fields import vector_text
from memories_app.metrics import SEARCH_SECONDS, scopes_label
from memories_app.models import Memory, MemoryRevision, PromotionJob, Scope, UserProfile
from memory_admin.errors import NotFound
from sessions_app import selectors as session_selectors
from sessions_app.models import AgentSession
from tenants_app.models import Tenant


def memories_for(tenant: Tenant) -> QuerySet[Memory]:
    """The tenant's live memories (logically deleted ones are invisible everywhere)."""
    return Memory.objects.alive().filter(tenant=tenant).select_related("session")


def get_memory(*, tenant: Tenant, memory_id: uuid.UUID | str) -> Memory:
    try:
        key = uuid.UUID(str(memory_id))
    except ValueError:
        raise NotFound("No such memory.", details={"memory_id": str(memory_id)}) from None
    memory = memories_for(tenant).filter(pk=key).first()
    if memory is None:
        raise NotFound("No such memory.", details={"memory_id": str(memory_id)})
    return memory


def revisions_of(memory: Memory) -> QuerySet[MemoryRevision]:
    return MemoryRevision.objects.filter(memory=memory).order_by("version")


def get_profile(*, tenant: Tenant, user_id: str) -> UserProfile:
    profile = UserProfile.objects.filter(tenant=tenant, user_id=user_id).first()
    if profile is None:
        raise NotFound("No profile for this user.", details={"user_id": user_id})
    return profile


def get_promotion_job(*, tenant: Tenant, job_id: uuid.UUID | str) -> PromotionJob:
    try:
        key = uuid.UUID(str(job_id))
    except ValueError:
        raise NotFound("No such promotion job.", details={"job_id": str(job_id)}) from None
    # An erased session's jobs go with it, from approval on: the purge deletes them later.
    rows = PromotionJob.objects.filter(tenant=tenant, pk=key, session__erased_at__isnull=True)
    job = rows.select_related("session").first()
    if job is None:
        raise NotFound("No such promotion job.", details={"job_id": str(job_id)})
    return job


@dataclass(frozen=True)
class ScoredMemory:
    memory: Memory
    score: float  # cosine similarity, 1 is identical


@dataclass(frozen=True)
class SearchScope:
    """Which memories a search may return: the scopes, and the owner the non-global scopes belong to."""

    scopes: frozenset[str]
    user_id: str = ""
    session: AgentSession | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _owned(tenant: Tenant, model_id: str, where: SearchScope) -> QuerySet[Memory] | None:
    owner_scopes = where.scopes - {Scope.GLOBAL}
    if not owner_scopes:
        return None
    queryset = memories_for(tenant).filter(embedding_model=model_id, user_id=where.user_id, scope__in=owner_scopes)
    if Scope.SESSION in owner_scopes and where.session is not None:
        # Session memories of this session only; user memories of the user whatever session made them.
        queryset = queryset.filter(Q(scope=Scope.USER) | Q(session=where.session))
    return queryset


def _scored_rows(rows: Sequence[Memory], min_score: float) -> list[ScoredMemory]:
    # The minimum score is applied to the k best rather than in SQL: the rows that pass are a prefix of the
    # ranking, so the answer is the same, and Postgres computes each distance once (a WHERE on the distance
    # computes it a second time for every row scanned) and an index scan stops after k rows.
    scored = [ScoredMemory(row, 1 - float(row.distance)) for row in rows]  # type: ignore[attr-defined]
    return [item for item in scored if item.score >= min_score]


def _query_vector(vector: Sequence[float]) -> Value | list[float]:
    text = vector_text(list(vector))
    return Value(text) if text is not None else list(vector)


def _ranked(queryset: QuerySet[Memory], vector: Sequence[float], *, k: int, min_score: float) -> list[ScoredMemory]:
    rows = (
        queryset.defer("embedding")  # compared in Postgres; no caller needs the vector back
        .annotate(distance=CosineDistance("embedding", _query_vector(vector)))
        .order_by("distance", "id")[:k]
    )
    return _scored_rows(list(rows), min_score)


def _ranked_by_index(
    queryset: QuerySet[Memory], vector: Sequence[float], *, dimensions: int, k: int, min_score: float
) -> list[ScoredMemory]:
    distance = CosineDistance(Cast("embedding", VectorField(dimensions=dimensions)), _query_vector(vector))
    with transaction.atomic(), connection.cursor() as cursor:
        # Iterative scans keep walking the graph until enough rows pass the filter; relaxed order is
        # re-sorted below.
        cursor.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %s, true)",
            [str(max(settings.MEMORY_HNSW_EF_SEARCH, k))],
        )
        rows = list(
            queryset.defer("embedding")
            .filter(dimensions=dimensions)
            .annotate(distance=distance)
            .order_by("distance")[:k]
        )
    return sorted(_scored_rows(rows, min_score), key=lambda item: (-item.score, str(item.memory.pk)))


# (tenant, model, limit) -> (checked at, holds more global memories than the limit). A hint, not shared state:
# a stale answer only picks the other strategy (both are correct) for at most _STRATEGY_TTL seconds.
_STRATEGY_TTL = 30.0
_many_globals: dict[tuple[object, str, int], tuple[float, bool]] = {}


def _more_than(queryset: QuerySet[Memory], limit: int) -> bool:
    return queryset.values("pk")[: limit + 1].count() > limit


def _globals_exceed(shared: QuerySet[Memory], key: tuple[object, str, int]) -> bool:
    """Whether the tenant holds more than `limit` global memories; counted at most every _STRATEGY_TTL seconds
    per process, since counting up to the limit costs as much as an exact search of that many rows."""
    now = time.monotonic()
    cached = _many_globals.get(key)
    if cached is not None and now - cached[0] < _STRATEGY_TTL:
        return cached[1]
    exceeds = _more_than(shared, key[2])
    if len(_many_globals) > 10_000:
        _many_globals.clear()
    _many_globals[key] = (now, exceeds)
    return exceeds


def search_memories(
    *,
    tenant: Tenant,
    vector: Sequence[float],
    model_id: str,
    where: SearchScope,
    k: int,
    min_score: float = -1.0,
) -> list[ScoredMemory]:
    """The k memories most similar to `vector` among those `where` allows, best first."""
    started = time.perf_counter()
    strategy = "exact"
    results: list[ScoredMemory] = []
    owned = _owned(tenant, model_id, where)
    if owned is not None:
        if where.metadata:
            owned = owned.filter(metadata__contains=where.metadata)
        results.extend(_ranked(owned, vector, k=k, min_score=min_score))
    if Scope.GLOBAL in where.scopes:
        # alive_global() says user_id="" (true of every global memory), so the exact scan seeks the
        # memory_owner_alive b-tree to the tenant's global rows instead of reading all the tenant's rows.
        # (No select_related: a global memory has no session.)
        shared = Memory.objects.alive_global().filter(tenant=tenant, embedding_model=model_id)
        if where.metadata:
            shared = shared.filter(metadata__contains=where.metadata)
        limit = settings.MEMORY_EXACT_SEARCH_MAX_ROWS
        # A metadata filter changes how many rows qualify, so it is counted each time; the plain scope is cached.
        many = _more_than(shared, limit) if where.metadata else _globals_exceed(shared, (tenant.pk, model_id, limit))
        if not many:
            results.extend(_ranked(shared, vector, k=k, min_score=min_score))
        else:
            strategy = "hnsw"
            results.extend(_ranked_by_index(shared, vector, dimensions=len(vector), k=k, min_score=min_score))
    results.sort(key=lambda item: (-item.score, str(item.memory.pk)))
    SEARCH_SECONDS.labels(scopes_label(where.scopes), strategy).observe(time.perf_counter() - started)
    return results[:k]


def session_messages(session: AgentSession) -> list[dict[str, Any]]:
    """The session's dialogue window as sessions_app keeps it (Redis, rebuilt from events when missing)."""
    messages = session_selectors.read_context(session=session).messages
    return [message for message in messages if isinstance(message, dict)]


# Content parts that hold text: chat completions, Anthropic and LangChain say "text"; OpenAI's Responses API says
# "input_text" (what the user wrote) and "output_text" (what the model answered).
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


def message_text(message: dict[str, Any]) -> str:
    """What a chat message says, as memories read it: its content when that is a string; when it is a list of
    content parts, the text of its text parts (and of parts that are plain strings), a line each; else nothing
    (an image or a tool call says nothing to remember or rank by)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "\n".join(texts)


UNRANKED_SCORE = 0.0  # the score of a memory listed without a vector to rank it by


def recent_memories(queryset: QuerySet[Memory], *, limit: int) -> list[ScoredMemory]:
    return [ScoredMemory(memory, UNRANKED_SCORE) for memory in queryset.order_by("-created_at", "-id")[:limit]]
