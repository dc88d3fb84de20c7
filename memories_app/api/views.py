"""Thin views over the memory services and selectors; every one is scoped to the caller's tenant."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from memories_app import profiles, selectors, services
from memories_app import recall as recall_module
from memories_app.api.serializers import (
    MemoryBatchResultSerializer,
    MemoryBatchSerializer,
    MemoryCreateSerializer,
    MemoryHistorySerializer,
    MemoryRevisionSerializer,
    MemorySerializer,
    MemoryUpdateSerializer,
    ProfileSerializer,
    ProfileUpdateSerializer,
    PromoteSerializer,
    PromotionJobSerializer,
    RecallQuerySerializer,
    RecallSerializer,
    SearchResultSerializer,
    SearchSerializer,
    quick_memory_fields,
    represent_memory,
)
from memories_app.background import record_access
from memories_app.embeddings import get_embedder
from memories_app.filters import MemoryFilter
from memories_app.models import Memory, Scope
from memories_app.selectors import ScoredMemory
from memory_admin.api.concurrency import etag, if_match_any, if_match_versions
from memory_admin.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from memory_admin.api.idempotency import idempotent, stored_key
from memory_admin.api.pagination import NewestFirstCursor
from memory_admin.api.schema import etag_header, location_header
from memory_admin.api.views import AgentAPIView
from memory_admin.errors import PreconditionFailed, ValidationFailed
from sessions_app.selectors import get_session
from tenants_app.authentication import AgentPrincipal

ERRORS = {
    400: OpenApiResponse(description="Invalid request (the one error shape)"),
    404: OpenApiResponse(description="Not found, or another tenant's"),
}
# What a write or query that embeds a text can also answer.
EMBEDDER_ERRORS = {
    422: OpenApiResponse(description="The embedder refused the text (over its model's length, say): not retryable"),
    503: OpenApiResponse(description="Embedder down"),
}


def _valid(serializer_class: Callable[..., Any], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _actor(request: Request) -> str:
    principal = request.user
    return f"api-key:{principal.api_key.prefix}" if isinstance(principal, AgentPrincipal) else "unknown"


@contextmanager
def _current_on_conflict(representation: Callable[[Any], dict[str, Any]]) -> Iterator[None]:
    """Turn a service's StaleVersion into a 412 that carries the current resource."""
    try:
        yield
    except services.StaleVersion as exc:
        raise PreconditionFailed(
            "The resource changed since you read it.",
            details={"current_version": exc.current.version, "current": representation(exc.current)},
        ) from exc


def _represent(memory: Memory) -> dict[str, Any]:
    return represent_memory(memory, now=timezone.now())


def _memory_response(memory: Memory, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_represent(memory), status=status, headers={"ETag": etag(memory.version), **(headers or {})})


def _scored(items: list[ScoredMemory], now: datetime) -> list[dict[str, Any]]:
    return [{"score": round(item.score, 6), "memory": represent_memory(item.memory, now=now)} for item in items]


def _batch_items(body: Any) -> list[dict[str, Any]]:
    """The batch's items, checked by `quick_memory_fields` when every one is plainly well-formed, else by
    MemoryBatchSerializer (which words the errors)."""
    if type(body) is dict and body.keys() == {"memories"} and type(body["memories"]) is list and body["memories"]:
        quick = [quick_memory_fields(item) for item in body["memories"]]
        if all(fields is not None for fields in quick):
            return cast(list[dict[str, Any]], quick)
    return list(_valid(MemoryBatchSerializer, body)["memories"])


def _idempotency_key(request: Request) -> str | None:
    return stored_key(request.method or "", request.path, request.headers.get(IDEMPOTENCY_HEADER))


def _to_new_memory(data: dict[str, Any]) -> services.NewMemory:
    return services.NewMemory(
        scope=data["scope"],
        content=data["content"],
        user_id=data.get("user_id", ""),
        session_id=data.get("session_id", ""),
        metadata=data.get("metadata"),
        embedding=data.get("embedding"),
    )


# The version a change is conditional on (the resource's ETag); a stale one is a 412 with the current version.
IF_MATCH = OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, required=False)
MEMORY_MERGED = OpenApiParameter(
    "Memory-Merged",
    {"type": "string", "enum": ["true"]},
    OpenApiParameter.HEADER,
    response=[200],
    description="`true` when the update was merged into a newer version than If-Match named (on_conflict=merge).",
)


class MemoryCollectionView(AgentAPIView):
    pagination_class = NewestFirstCursor

    @extend_schema(
        parameters=[
            OpenApiParameter("scope", str, enum=["session", "user", "global"]),
            OpenApiParameter("user_id", str),
            OpenApiParameter("session_id", str),
            OpenApiParameter("source", str, enum=["api", "promotion", "distillation", "profile"]),
            OpenApiParameter("created_after", OpenApiTypes.DATETIME),
            OpenApiParameter("created_before", OpenApiTypes.DATETIME),
            OpenApiParameter("cursor", str),
            OpenApiParameter("limit", int),
        ],
        responses={200: MemorySerializer(many=True)},
        summary="List memories, newest first (cursor pagination)",
    )
    def get(self, request: Request) -> Response:
        filterset = MemoryFilter(request.query_params, queryset=selectors.memories_for(self.tenant))
        if not filterset.is_valid():
            raise ValidationFailed(
                "The filters did not validate.", details={"fields": filterset.errors.get_json_data()}
            )
        page = self.paginate_queryset(filterset.qs) or []
        now = timezone.now()
        return self.get_paginated_response([represent_memory(memory, now=now) for memory in page])

    @extend_schema(
        request=MemoryCreateSerializer,
        responses={201: MemorySerializer, **EMBEDDER_ERRORS, **ERRORS},
        summary="Store a memory",
        parameters=[etag_header(201), location_header("The new memory.", 201)],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = quick_memory_fields(request.data) or _valid(MemoryCreateSerializer, request.data)
        memory = services.create_memory(
            tenant=self.tenant, item=_to_new_memory(data), idempotency_key=_idempotency_key(request)
        )
        return _memory_response(memory, status=201, headers={"Location": f"/api/v1/memories/{memory.pk}"})


class MemoryBatchView(AgentAPIView):
    @extend_schema(
        request=MemoryBatchSerializer,
        responses={201: MemoryBatchResultSerializer, **EMBEDDER_ERRORS, **ERRORS},
        summary="Store many memories at once (all or none)",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        items = [_to_new_memory(item) for item in _batch_items(request.data)]
        memories = services.create_memories(tenant=self.tenant, items=items, idempotency_key=_idempotency_key(request))
        now = timezone.now()
        return Response({"memories": [represent_memory(memory, now=now) for memory in memories]}, status=201)


class MemoryDetailView(AgentAPIView):
    @extend_schema(responses={200: MemorySerializer, **ERRORS}, summary="Read a memory", parameters=[etag_header(200)])
    def get(self, request: Request, memory_id: str) -> Response:
        return _memory_response(selectors.get_memory(tenant=self.tenant, memory_id=memory_id))

    @extend_schema(
        request=MemoryUpdateSerializer,
        responses={
            200: MemorySerializer,
            412: OpenApiResponse(description="Stale If-Match"),
            **EMBEDDER_ERRORS,
            **ERRORS,
        },
        summary="Update a memory (If-Match; optional merge on conflict)",
        parameters=[IF_MATCH, etag_header(200), MEMORY_MERGED],
    )
    @idempotent
    def patch(self, request: Request, memory_id: str) -> Response:
        data = _valid(MemoryUpdateSerializer, request.data)
        with _current_on_conflict(_represent):
            outcome = services.update_memory(
                tenant=self.tenant,
                memory_id=memory_id,
                actor=_actor(request),
                expected_versions=if_match_versions(request),
                content=data.get("content"),
                metadata=data.get("metadata"),
                merge_on_conflict=data["on_conflict"] == "merge",
            )
        return _memory_response(outcome.memory, headers={"Memory-Merged": "true"} if outcome.merged else None)

    @extend_schema(
        responses={204: None, 412: OpenApiResponse(description="Stale If-Match"), **ERRORS},
        summary="Delete a memory (logically, at once; If-Match)",
        parameters=[IF_MATCH],
    )
    @idempotent
    def delete(self, request: Request, memory_id: str) -> Response:
        with _current_on_conflict(_represent):
            services.delete_memory(
                tenant=self.tenant, memory_id=memory_id, expected_versions=if_match_versions(request)
            )
        return Response(status=204)


class MemoryHistoryView(AgentAPIView):
    @extend_schema(responses={200: MemoryHistorySerializer, **ERRORS}, summary="A memory's changes")
    def get(self, request: Request, memory_id: str) -> Response:
        memory = selectors.get_memory(tenant=self.tenant, memory_id=memory_id)
        revisions = selectors.revisions_of(memory)
        return Response({"revisions": MemoryRevisionSerializer(revisions, many=True).data})


class MemorySearchView(AgentAPIView):
    @extend_schema(
        request=SearchSerializer,
        responses={200: SearchResultSerializer, **EMBEDDER_ERRORS, **ERRORS},
        summary="Semantic search by text or vector",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = _valid(SearchSerializer, request.data)
        if data["k"] > settings.MEMORY_SEARCH_MAX_K:
            raise ValidationFailed(
                "The request did not validate.", details={"fields": {"k": [f"At most {settings.MEMORY_SEARCH_MAX_K}."]}}
            )
        where = self._where(data)
        embedder = get_embedder()
        if "embedding" in data:
            vector = services.clean_vector(data["embedding"], dimensions=embedder.dimensions)
        else:
            vector = services.embed_texts([services.clean_content(data["query"], field="query")])[0]
        results = selectors.search_memories(
            tenant=self.tenant,
            vector=vector,
            model_id=embedder.model_id,
            where=where,
            k=data["k"],
            min_score=data["min_score"],
        )
        record_access([str(item.memory.pk) for item in results])
        return Response({"results": _scored(results, timezone.now())})

    def _where(self, data: dict[str, Any]) -> selectors.SearchScope:
        scopes = frozenset(data["scopes"])
        user_id, session = data.get("user_id", ""), None
        if data.get("session_id"):
            session = get_session(tenant=self.tenant, session_id=data["session_id"])
            if user_id and user_id != session.user_id:
                raise ValidationFailed(
                    "The request did not validate.",
                    details={"fields": {"session_id": ["The session belongs to another user."]}},
                )
            user_id = session.user_id
        if Scope.SESSION in scopes and session is None:
            raise ValidationFailed(
                "The request did not validate.", details={"fields": {"session_id": ["Needed for the session scope."]}}
            )
        if Scope.USER in scopes and not user_id:
            raise ValidationFailed(
                "The request did not validate.", details={"fields": {"user_id": ["Needed for the user scope."]}}
            )
        return selectors.SearchScope(
            scopes=scopes, user_id=user_id, session=session, metadata=data.get("metadata") or {}
        )


class RecallView(AgentAPIView):
    @extend_schema(
        parameters=[RecallQuerySerializer],
        responses={200: RecallSerializer, **EMBEDDER_ERRORS, **ERRORS},
        summary="Hot context plus the most relevant session, user and global memories",
    )
    def get(self, request: Request, session_id: str) -> Response:
        data = _valid(RecallQuerySerializer, request.query_params)
        session = get_session(tenant=self.tenant, session_id=session_id)
        limits = recall_module.RecallLimits(
            context=data["context_limit"],
            session=data["session_limit"],
            user=data["user_limit"],
            global_=data["global_limit"],
        )
        result = recall_module.recall(
            session=session, query=data.get("query", ""), limits=limits, min_score=data["min_score"]
        )
        record_access([str(item.memory.pk) for item in result.session + result.user + result.global_])
        now = timezone.now()
        return Response(
            {
                "query": result.query,
                "context": result.context,
                "session_memories": _scored(result.session, now),
                "user_memories": _scored(result.user, now),
                "global_memories": _scored(result.global_, now),
            }
        )


class PromoteView(AgentAPIView):
    @extend_schema(
        request=PromoteSerializer,
        responses={202: PromotionJobSerializer, **ERRORS},
        summary="Promote session knowledge to the user's scope (runs in the background)",
        parameters=[location_header("The promotion job, to follow its progress.", 202)],
    )
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        data = _valid(PromoteSerializer, request.data)
        session = get_session(tenant=self.tenant, session_id=session_id)
        job = services.request_promotion(
            tenant=self.tenant, session=session, memory_ids=data.get("memory_ids", []), texts=data.get("texts", [])
        )
        return Response(
            PromotionJobSerializer(job).data, status=202, headers={"Location": f"/api/v1/promotions/{job.pk}"}
        )


class PromotionJobView(AgentAPIView):
    @extend_schema(responses={200: PromotionJobSerializer, **ERRORS}, summary="A promotion job's progress")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(PromotionJobSerializer(selectors.get_promotion_job(tenant=self.tenant, job_id=job_id)).data)


class ProfileView(AgentAPIView):
    @extend_schema(
        responses={200: ProfileSerializer, **ERRORS}, summary="A user's profile", parameters=[etag_header(200)]
    )
    def get(self, request: Request, user_id: str) -> Response:
        profile = selectors.get_profile(tenant=self.tenant, user_id=user_id)
        return Response(ProfileSerializer(profile).data, headers={"ETag": etag(profile.version)})

    @extend_schema(
        request=ProfileUpdateSerializer,
        responses={200: ProfileSerializer, 412: OpenApiResponse(description="Stale If-Match"), **ERRORS},
        summary="Create or update a user's profile (If-Match)",
        parameters=[IF_MATCH, etag_header(200)],
    )
    @idempotent
    def patch(self, request: Request, user_id: str) -> Response:
        data = _valid(ProfileUpdateSerializer, request.data)
        with _current_on_conflict(lambda profile: dict(ProfileSerializer(profile).data)):
            profile = profiles.update_profile(
                tenant=self.tenant,
                user_id=user_id,
                expected_versions=if_match_versions(request),
                must_exist=if_match_any(request),
                preferences=data.get("preferences"),
                facts=data.get("facts"),
                record_interaction=data["record_interaction"],
            )
        return Response(ProfileSerializer(profile).data, headers={"ETag": etag(profile.version)})
