"""Thin views of the checkpoints API: parse, call a selector or service, render."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from checkpoints_app import selectors, services
from checkpoints_app.api import serializers as s
from checkpoints_app.chain import Rebuilt
from memory_admin.api.idempotency import idempotent
from memory_admin.api.pagination import NewestFirstCursor
from memory_admin.api.schema import location_header
from memory_admin.api.views import AgentAPIView
from memory_admin.errors import NotFound, ValidationFailed
from sessions_app.models import AgentSession
from sessions_app.selectors import get_session, known_session


class NewestSequenceFirst(NewestFirstCursor):
    """Checkpoints newest first by their sequence (unique per session, so pages never skip or repeat)."""

    ordering = ("-sequence", "-created_at")


def _with_state(rebuilt: Rebuilt) -> HttpResponse:
    return HttpResponse(s.checkpoint_with_state_body(rebuilt), content_type="application/json")


def _uuid_param(request: Request, name: str) -> uuid.UUID:
    raw = request.query_params.get(name)
    if raw is None:
        raise ValidationFailed(f"The query parameter `{name}` is required.", details={"parameter": name})
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed(f"`{name}` must be a checkpoint id (a UUID).", details={"parameter": name}) from None


# A read rebuilds the state through the chain and checks it: a broken link is a 409 naming it, never a wrong state.
_BROKEN_CHAIN = {409: OpenApiResponse(description="The chain is broken (`integrity_failure`): details name the link.")}


class SessionCheckpointsView(AgentAPIView):
    """A view under /sessions/<session_id>/checkpoints: `get_session()` is the caller's session, or 404."""

    def get_session(self) -> AgentSession:
        session_id = self.kwargs["session_id"]
        if "\x00" in session_id:  # no session has one, and PostgreSQL refuses it in a query (a 500)
            raise NotFound("No such session.", details={})
        return get_session(tenant=self.tenant, session_id=session_id)


class CheckpointListView(SessionCheckpointsView):
    pagination_class = NewestSequenceFirst
    serializer_class = s.CheckpointOut

    @extend_schema(responses=s.CheckpointOut(many=True))
    def get(self, request: Request, session_id: str) -> Response:
        page = self.paginate_queryset(selectors.checkpoints_for(self.get_session()))
        return self.get_paginated_response(s.CheckpointOut(page, many=True).data)

    @extend_schema(
        request=s.CheckpointIn,
        responses={201: s.CheckpointOut, 200: s.CheckpointOut},
        parameters=[location_header("The checkpoint saved (200: the one saved before with this sequence).", 200, 201)],
    )
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        session_id = self.kwargs["session_id"]
        if "\x00" in session_id:  # no session has one, and PostgreSQL refuses it in a query (a 500)
            raise NotFound("No such session.", details={})
        session = known_session(tenant=self.tenant, session_id=session_id)
        body = s.CheckpointIn(data=request.data)
        body.is_valid(raise_exception=True)
        data: dict[str, Any] = body.validated_data
        outcome = services.save_checkpoint(
            session=session,
            node_id=data["node_id"],
            state=data.get("state"),
            patch=data.get("patch"),
            parent_id=data.get("parent_id"),
            sequence=data.get("sequence"),
            checksum=data.get("checksum"),
            metadata=data["metadata"],
        )
        return Response(
            s.checkpoint_out(outcome.checkpoint),
            status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK,
            headers={"Location": f"{request.path}/{outcome.checkpoint.pk}"},
        )


class LatestCheckpointView(SessionCheckpointsView):
    @extend_schema(responses={200: s.CheckpointWithStateOut, **_BROKEN_CHAIN})
    def get(self, request: Request, session_id: str) -> HttpResponse:
        return _with_state(selectors.get_latest_checkpoint(session=self.get_session()))


class CheckpointDetailView(SessionCheckpointsView):
    @extend_schema(responses={200: s.CheckpointWithStateOut, **_BROKEN_CHAIN})
    def get(self, request: Request, session_id: str, checkpoint_id: uuid.UUID) -> HttpResponse:
        return _with_state(selectors.get_checkpoint(session=self.get_session(), checkpoint_id=checkpoint_id))


class CheckpointBySequenceView(SessionCheckpointsView):
    @extend_schema(responses={200: s.CheckpointWithStateOut, **_BROKEN_CHAIN})
    def get(self, request: Request, session_id: str, sequence: int) -> HttpResponse:
        session = self.get_session()
        if sequence > s.MAX_SEQUENCE:
            raise NotFound("No checkpoint with this sequence in this session.", details={"sequence": sequence})
        return _with_state(selectors.get_checkpoint_by_sequence(session=session, sequence=sequence))


class CheckpointDiffView(SessionCheckpointsView):
    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.UUID, required=True, description="The older checkpoint's id."),
            OpenApiParameter("to", OpenApiTypes.UUID, required=True, description="The newer checkpoint's id."),
        ],
        responses={200: s.DiffOut, **_BROKEN_CHAIN},
    )
    def get(self, request: Request, session_id: str) -> Response:
        from_id, to_id = _uuid_param(request, "from"), _uuid_param(request, "to")
        diff = selectors.diff_checkpoints(session=self.get_session(), from_id=from_id, to_id=to_id)
        return Response(s.DiffOut(diff).data)


class CheckpointVerifyView(SessionCheckpointsView):
    @extend_schema(responses=s.VerificationOut)
    def get(self, request: Request, session_id: str) -> Response:
        """Recompute the session's whole checksum chain; 200 with `valid: false` and the first bad link
        when it is broken (reads of a broken checkpoint are 409 integrity_failure)."""
        return Response(s.VerificationOut(selectors.verify_checkpoints(session=self.get_session())).data)
