"""Thin views of the LangGraph API: parse, call a selector or service, render."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response

from langgraph_app import retention, selectors, services, store
from langgraph_app.api import serializers as s
from memory_admin.api.idempotency import idempotent
from memory_admin.api.parsers import parse_json_text
from memory_admin.api.views import AgentAPIView
from memory_admin.errors import ValidationFailed


def _valid(serializer_class: Any, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _query_text(request: Request, name: str, *, max_length: int = 512) -> str | None:
    value = request.query_params.get(name)
    if value is not None and len(value) > max_length:
        raise ValidationFailed(f"`{name}` is longer than {max_length} characters.", details={"parameter": name})
    return value


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return selectors.MAX_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= selectors.MAX_LIMIT:
        raise ValidationFailed(f"`limit` must be 1-{selectors.MAX_LIMIT}.", details={"parameter": "limit"})
    return limit


def _json_object_param(request: Request, name: str) -> dict[str, Any] | None:
    """The query parameter `name` parsed as a JSON object; None when absent, ValueError when malformed (as a
    body would be: NaN, NUL characters and the like included) or not an object."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = parse_json_text(raw)
    except ParseError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} is not a JSON object")
    return value


def _metadata_filter(request: Request) -> dict[str, Any] | None:
    try:
        value = _json_object_param(request, "filter")
    except ValueError:
        raise ValidationFailed("`filter` must be a JSON object.", details={"parameter": "filter"}) from None
    return value


_LIST_PARAMETERS = [
    OpenApiParameter("checkpoint_ns", OpenApiTypes.STR, description="One namespace (absent: all of them)."),
    OpenApiParameter("checkpoint_id", OpenApiTypes.STR, description="Exactly this checkpoint."),
    OpenApiParameter("before", OpenApiTypes.STR, description="Only checkpoints with a smaller id (the cursor)."),
    OpenApiParameter(
        "limit", OpenApiTypes.INT, description=f"1-{selectors.MAX_LIMIT} (default {selectors.MAX_LIMIT})."
    ),
    OpenApiParameter("filter", OpenApiTypes.STR, description="A JSON object the metadata must contain."),
    OpenApiParameter("after", OpenApiTypes.STR, description="The previous page's `next_after` (JSON)."),
]


class ThreadCheckpointsView(AgentAPIView):
    @extend_schema(parameters=_LIST_PARAMETERS, responses=s.TuplePageOut)
    def get(self, request: Request, session_id: str) -> Response:
        """The thread's checkpoints newest first, with channel values and pending writes (LangGraph's list and
        get_tuple; the latest is `limit=1`)."""
        limit = _limit(request)
        views = selectors.list_tuples(
            tenant=self.tenant,
            thread_id=session_id,
            checkpoint_ns=_query_text(request, "checkpoint_ns", max_length=s.QUERY_MAX_LENGTH["checkpoint_ns"]),
            checkpoint_id=_query_text(request, "checkpoint_id", max_length=s.QUERY_MAX_LENGTH["checkpoint_id"]),
            before=_query_text(request, "before", max_length=s.QUERY_MAX_LENGTH["before"]),
            metadata_filter=_metadata_filter(request),
            after=_position(request),
            limit=limit,
        )
        return Response(s.tuple_page(views, limit))

    @extend_schema(request=s.CheckpointIn, responses={201: s.CheckpointSavedOut})
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        data = _valid(s.CheckpointIn, request.data)
        services.put_checkpoint(
            tenant=self.tenant,
            thread_id=session_id,
            checkpoint_ns=data["checkpoint_ns"],
            checkpoint_id=data["checkpoint_id"],
            parent_checkpoint_id=data["parent_checkpoint_id"],
            checkpoint=data["checkpoint"],
            metadata=data["metadata"],
            blobs=data["blobs"],
            user_id=data["user_id"],
        )
        body = {"checkpoint_ns": data["checkpoint_ns"], "checkpoint_id": data["checkpoint_id"]}
        return Response(body, status=status.HTTP_201_CREATED)


def _position(request: Request) -> selectors.Position | None:
    refused = ValidationFailed(
        "`after` must be the `next_after` object of the previous page.", details={"parameter": "after"}
    )
    try:
        value = _json_object_param(request, "after")
    except ValueError:
        raise refused from None
    if value is None:
        return None
    fields = ("checkpoint_id", "thread_id", "checkpoint_ns")
    if set(value) != set(fields) or not all(
        isinstance(value[name], str) and len(value[name]) <= 512 for name in fields
    ):
        raise refused
    return selectors.Position(**value)


class CheckpointsView(AgentAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("before", OpenApiTypes.STR, description="Only checkpoints with a smaller id."),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description=f"1-{selectors.MAX_LIMIT} (default {selectors.MAX_LIMIT})."
            ),
            OpenApiParameter("filter", OpenApiTypes.STR, description="A JSON object the metadata must contain."),
            OpenApiParameter("after", OpenApiTypes.STR, description="The previous page's `next_after` (JSON)."),
        ],
        responses=s.TenantTuplePageOut,
    )
    def get(self, request: Request) -> Response:
        """Checkpoints of every thread of the tenant, newest first (LangGraph's `list(None, ...)`), with channel
        values and pending writes."""
        limit = _limit(request)
        views = selectors.list_tenant_tuples(
            tenant=self.tenant,
            before=_query_text(request, "before", max_length=s.QUERY_MAX_LENGTH["before"]),
            after=_position(request),
            metadata_filter=_metadata_filter(request),
            limit=limit,
        )
        next_after = s.position_out(views[-1]) if len(views) == limit else None
        return Response({"results": [s.tuple_out(view) for view in views], "next_after": next_after})


class ThreadWritesView(AgentAPIView):
    @extend_schema(request=s.WritesIn, responses=s.WritesOut)
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        """Store a task's pending writes on a checkpoint (LangGraph's put_writes)."""
        data = _valid(s.WritesIn, request.data)
        stored = services.put_writes(tenant=self.tenant, thread_id=session_id, **data)
        return Response({"stored": stored})


class ThreadSavesView(AgentAPIView):
    @extend_schema(request=s.SavesIn, responses=s.SavesOut)
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        """Store several checkpoints and task writes of the thread in order, in one transaction (the
        checkpointer sends what LangGraph asked it to save while its previous request was in flight)."""
        saves, user_id = s.parse_saves(request.data)
        checkpoints, writes = services.save_batch(
            tenant=self.tenant, thread_id=session_id, saves=saves, user_id=user_id
        )
        return Response({"checkpoints": checkpoints, "writes": writes})


class ThreadView(AgentAPIView):
    @extend_schema(responses={200: s.CountOut})
    @idempotent
    def delete(self, request: Request, session_id: str) -> Response:
        """Remove the thread's checkpoints, blobs and writes in every namespace (LangGraph's delete_thread);
        `count` checkpoints removed."""
        return Response({"count": services.delete_thread(tenant=self.tenant, thread_id=session_id)})


class ThreadCopyView(AgentAPIView):
    @extend_schema(request=s.CopyIn, responses={201: s.CountOut})
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        """Copy the thread to `target_thread_id` (LangGraph's copy_thread); `count` checkpoints copied."""
        data = _valid(s.CopyIn, request.data)
        count = services.copy_thread(
            tenant=self.tenant, source_thread_id=session_id, target_thread_id=data["target_thread_id"]
        )
        return Response({"count": count}, status=status.HTTP_201_CREATED)


class PruneView(AgentAPIView):
    @extend_schema(
        request=s.PruneIn,
        responses={
            200: s.CountOut,
            422: OpenApiResponse(
                description="keep_latest of threads that use a DeltaChannel, refused as PostgresSaver refuses them "
                "(nothing is pruned); `details.delta_channel_threads` names them."
            ),
        },
    )
    @idempotent
    def post(self, request: Request) -> Response:
        """Prune threads: keep each namespace's latest checkpoint, or delete all (LangGraph's prune); `count`
        checkpoints removed. keep_latest refuses threads that use a DeltaChannel (a 422 naming them)."""
        data = _valid(s.PruneIn, request.data)
        count = retention.prune_threads(tenant=self.tenant, thread_ids=data["thread_ids"], strategy=data["strategy"])
        return Response({"count": count})


class DeleteForRunsView(AgentAPIView):
    @extend_schema(request=s.DeleteForRunsIn, responses=s.CountOut)
    @idempotent
    def post(self, request: Request) -> Response:
        """Remove the checkpoints (and their writes) of these runs, in every thread of the tenant."""
        data = _valid(s.DeleteForRunsIn, request.data)
        return Response({"count": retention.delete_for_runs(tenant=self.tenant, run_ids=data["run_ids"])})


class StoreBatchView(AgentAPIView):
    @extend_schema(request=s.StoreBatchIn, responses=s.StoreBatchOut)
    @idempotent
    def post(self, request: Request) -> Response:
        """Run a batch of LangGraph store operations (BaseStore.batch) in order; one answer per operation."""
        data = _valid(s.StoreBatchIn, request.data)
        return Response({"results": store.run_batch(tenant=self.tenant, ops=data["ops"])})
