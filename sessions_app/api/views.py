"""Thin views of the sessions API: parse, call a selector or service, render."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from memory_admin.api.concurrency import etag, if_match_versions
from memory_admin.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from memory_admin.api.idempotency import idempotent, stored_key
from memory_admin.api.pagination import NewestFirstCursor, VersionCursor
from memory_admin.api.schema import etag_header
from memory_admin.api.serializers import StrictSerializer
from memory_admin.api.views import AgentAPIView
from memory_admin.errors import Archived, NotFound, ValidationFailed
from memory_admin.query import whole_number
from sessions_app import selectors, services
from sessions_app.api import serializers as s
from sessions_app.filters import SessionFilter
from sessions_app.identity import SessionIdentity
from sessions_app.models import AgentSession, Event, Operation, OperationStatus
from sessions_app.state import TOOL_NAME


def _session_response(session: AgentSession, *, code: int = status.HTTP_200_OK) -> Response:
    return Response(s.SessionOut(session).data, status=code, headers={"ETag": etag(session.version)})


def _idempotency_key(request: Request) -> str | None:
    return stored_key(request.method or "", request.path, request.headers.get(IDEMPOTENCY_HEADER))


class SessionScopedView(AgentAPIView):
    """A view under /sessions/<session_id>/: `self.session` is the caller's session, or 404."""

    def get_session(self) -> AgentSession:
        return selectors.get_session(tenant=self.tenant, session_id=self.kwargs["session_id"])

    def session_to_append_to(self) -> SessionIdentity:
        """For appends: the session as this process remembers it (the append's statement checks the row)."""
        return selectors.known_session(tenant=self.tenant, session_id=self.kwargs["session_id"])

    def decoder(self, session: AgentSession) -> dict[str, Any]:
        return {"decode": partial(selectors.decode, session)}


# --- sessions -------------------------------------------------------------------------------------------


class SessionListView(AgentAPIView):
    pagination_class = NewestFirstCursor
    filterset_class = SessionFilter
    serializer_class = s.SessionOut

    def get_queryset(self) -> QuerySet[AgentSession]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator: no caller, only the filters' model
            return AgentSession.objects.none()
        return selectors.sessions_for(self.tenant)

    @extend_schema(responses=s.SessionOut(many=True), filters=True)
    def get(self, request: Request) -> Response:
        sessions = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(sessions)
        return self.get_paginated_response(s.SessionOut(page, many=True).data)

    @extend_schema(
        request=s.SessionCreateIn, responses={201: s.SessionOut, 200: s.SessionOut}, parameters=[etag_header(200, 201)]
    )
    @idempotent
    def post(self, request: Request) -> Response:
        body = s.SessionCreateIn(data=request.data)
        body.is_valid(raise_exception=True)
        session, created = services.create_session(
            tenant=self.tenant,
            user_id=body.validated_data["user_id"],
            session_id=body.validated_data.get("id"),
            metadata=body.validated_data["metadata"],
        )
        return _session_response(session, code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SessionDetailView(SessionScopedView):
    @extend_schema(responses=s.SessionOut, parameters=[etag_header(200)])
    def get(self, request: Request, session_id: str) -> Response:
        return _session_response(self.get_session())

    @extend_schema(
        request=s.SessionUpdateIn,
        responses=s.SessionOut,
        parameters=[OpenApiParameter("If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER), etag_header(200)],
    )
    @idempotent
    def patch(self, request: Request, session_id: str) -> Response:
        body = s.SessionUpdateIn(data=request.data)
        body.is_valid(raise_exception=True)
        session = services.update_session(
            session=self.get_session(),
            status=body.validated_data.get("status"),
            metadata_patch=body.validated_data.get("metadata"),
            expected_version=if_match_versions(request),
        )
        return _session_response(session)


# --- events and state -----------------------------------------------------------------------------------


class EventListView(SessionScopedView):
    pagination_class = VersionCursor
    serializer_class = s.EventOut

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Only events with a version above this.")],
        responses=s.EventOut(many=True),
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = self.get_session()
        events: QuerySet[Event] = selectors.events_for(session)
        raw = request.query_params.get("after")
        after = 0
        if raw is not None:
            checked = whole_number(raw)
            if checked is None:
                raise ValidationFailed("`after` must be a version number.", details={"field": "after"})
            after = checked
            events = events.filter(version__gt=after)
        page = self.paginate_queryset(events)
        if page is not None and isinstance(self.paginator, VersionCursor):
            start = _page_start(self.paginator, page, after=after)
            if start is not None:
                _refuse_archived_start(session, after=start, first=page[0].version if page else None)
        return self.get_paginated_response(s.EventOut(page, many=True, context=self.decoder(session)).data)

    @extend_schema(request=s.EventAppendIn, responses={201: s.AppendOut})
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        body = s.EventAppendIn(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.append_events(
            session=self.session_to_append_to(),
            events=[services.NewEvent(item["type"], item["payload"]) for item in body.validated_data["events"]],
            expected_version=body.validated_data.get("expected_version"),
            idempotency_key=_idempotency_key(request),
        )
        return _append_response(result)


def _page_start(paginator: VersionCursor, page: list[Event], *, after: int) -> int | None:
    """The version a page's first event follows when none between is missing: where the read starts, or the
    cursor's page begins. None when nothing can be missing below the page: a full page read backwards (a
    `previous` link) ends where the one the client came from begins, and stored versions have no gap."""
    if paginator.cursor is None:
        return after
    offset, reverse, position = paginator.cursor
    if not reverse:
        return max(after, int(position or 0)) + offset
    if len(page) == paginator.page_size or (position is not None and int(position) - offset <= after + 1):
        return None
    return after


def _refuse_archived_start(session: AgentSession, *, after: int, first: int | None) -> None:
    """410 when the events right after `after` left Postgres for the archive: versions are gap-free, so a
    stream read that would start past them would hand a consumer a history with a hole in it."""
    if after < session.head_version and first != after + 1:
        if first is None:  # (a page read backwards, or one whose events all went)
            first = selectors.events_for(session).order_by("version").values_list("version", flat=True).first()
        raise Archived(
            f"The events after version {after} of this session are archived; read them from the archive, or "
            f"read on from version {(first or session.head_version + 1) - 1} with `after`.",
            details={"after": after, "first_version_here": first},
        )


def _append_response(result: services.AppendResult) -> Response:
    return Response(s.append_out(result), status=status.HTTP_201_CREATED)


def _context_response(view: selectors.ContextView) -> Response:
    return Response(s.context_out(view))


class StateView(SessionScopedView):
    @extend_schema(
        parameters=[OpenApiParameter("version", int, description="Time travel: the state after this version.")],
        responses=s.StateOut,
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = self.get_session()
        raw = request.query_params.get("version")
        version = session.head_version
        if raw is not None:
            asked = whole_number(raw)
            if asked is None or asked > session.head_version:
                raise ValidationFailed(
                    f"`version` must be between 0 and the head version {session.head_version}.",
                    details={"field": "version", "head_version": session.head_version},
                )
            version = asked
        view = selectors.rebuild_state(session, version=version)
        return Response(s.StateOut(view).data)


# --- hot context and tools ------------------------------------------------------------------------------


class ContextView(SessionScopedView):
    @extend_schema(responses=s.ContextOut)
    def get(self, request: Request, session_id: str) -> Response:
        return _context_response(selectors.read_context(session=self.get_session()))

    @extend_schema(request=s.ContextReplaceIn, responses=s.ContextOut)
    @idempotent
    def put(self, request: Request, session_id: str) -> Response:
        body = s.ContextReplaceIn(data=request.data)
        body.is_valid(raise_exception=True)
        session = self.get_session()
        services.replace_context(
            session=session, messages=body.validated_data["messages"], idempotency_key=_idempotency_key(request)
        )
        session.refresh_from_db(fields=["head_version"])
        return _context_response(selectors.read_context(session=session))


class ContextMessagesView(SessionScopedView):
    @extend_schema(request=s.MessagesAppendIn, responses={201: s.AppendOut})
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        body = s.MessagesAppendIn(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.append_messages(
            session=self.session_to_append_to(),
            messages=body.validated_data["messages"],
            expected_version=body.validated_data.get("expected_version"),
            idempotency_key=_idempotency_key(request),
        )
        return _append_response(result)


class ToolListView(SessionScopedView):
    @extend_schema(responses=s.ToolStateOut(many=True))
    def get(self, request: Request, session_id: str) -> Response:
        return Response(s.ToolStateOut(selectors.list_tool_states(session=self.get_session()), many=True).data)


class ToolStateView(SessionScopedView):
    def tool_name(self) -> str:
        tool: str = self.kwargs["tool"]
        if not TOOL_NAME.fullmatch(tool):
            raise NotFound("No such tool state.", details={"tool": tool})
        return tool

    @extend_schema(responses=s.ToolStateOut)
    def get(self, request: Request, session_id: str, tool: str) -> Response:
        view = selectors.read_tool_state(session=self.get_session(), tool=self.tool_name())
        return Response(s.ToolStateOut(view).data)

    @extend_schema(request=s.ToolStateIn, responses=s.ToolStateOut)
    @idempotent
    def put(self, request: Request, session_id: str, tool: str) -> Response:
        body = s.ToolStateIn(data=request.data)
        body.is_valid(raise_exception=True)
        tool = self.tool_name()
        session = self.get_session()
        result = services.set_tool_state(
            session=session, tool=tool, state=body.validated_data["state"], idempotency_key=_idempotency_key(request)
        )
        view = selectors.written_tool_state(
            session=session, tool=tool, state=body.validated_data["state"], version=result.head_version
        )
        return Response(s.ToolStateOut(view).data)

    @extend_schema(responses={204: None})
    @idempotent
    def delete(self, request: Request, session_id: str, tool: str) -> Response:
        session = self.get_session()
        tool = self.tool_name()
        selectors.read_tool_state(session=session, tool=tool)  # 404 when there is nothing to clear
        services.clear_tool_state(session=session, tool=tool)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- operation journal ----------------------------------------------------------------------------------


class OperationListView(SessionScopedView):
    pagination_class = NewestFirstCursor
    serializer_class = s.OperationOut

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=OperationStatus.values)],
        responses=s.OperationOut(many=True),
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = self.get_session()
        operations: QuerySet[Operation] = selectors.operations_for(session)
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in OperationStatus.values:
                raise ValidationFailed(
                    "Unknown status.", details={"field": "status", "allowed": OperationStatus.values}
                )
            operations = operations.filter(status=wanted)
        page = self.paginate_queryset(operations)
        if not page:  # none here: perhaps all in the archive
            selectors.refuse_archived_journal(session)
        return self.get_paginated_response(s.OperationOut(page, many=True, context=self.decoder(session)).data)

    @extend_schema(
        request=s.OperationIn,
        responses={
            201: s.OperationOut,
            200: OpenApiResponse(
                s.OperationOut, description="The key was recorded already, with this name and params."
            ),
            409: OpenApiResponse(
                description="The key was recorded with another name or params (`details` carry the recorded "
                "operation), or the session is completed, failed or archived."
            ),
        },
    )
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        body = s.OperationIn(data=request.data)
        body.is_valid(raise_exception=True)
        session = self.get_session()
        operation, created = services.record_operation(session=session, **body.validated_data)
        return Response(
            s.OperationOut(operation, context=self.decoder(session)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class OperationDetailView(SessionScopedView):
    @extend_schema(responses=s.OperationOut)
    def get(self, request: Request, session_id: str, operation_id: str) -> Response:
        session = self.get_session()
        operation = selectors.get_operation(session=session, operation_id=operation_id)
        return Response(s.OperationOut(operation, context=self.decoder(session)).data)


class OperationFinishView(SessionScopedView):
    outcome: str = OperationStatus.COMPLETED

    def finish(self, request: Request, serializer: type[StrictSerializer], field: str, operation_id: str) -> Response:
        body = serializer(data=request.data)
        body.is_valid(raise_exception=True)
        session = self.get_session()
        operation = services.finish_operation(
            session=session, operation_id=operation_id, status=self.outcome, outcome=body.validated_data[field]
        )
        return Response(s.OperationOut(operation, context=self.decoder(session)).data)


class OperationCompleteView(OperationFinishView):
    outcome = OperationStatus.COMPLETED

    @extend_schema(request=s.OperationResultIn, responses=s.OperationOut)
    @idempotent
    def post(self, request: Request, session_id: str, operation_id: str) -> Response:
        return self.finish(request, s.OperationResultIn, "result", operation_id)


class OperationFailView(OperationFinishView):
    outcome = OperationStatus.FAILED

    @extend_schema(request=s.OperationErrorIn, responses=s.OperationOut)
    @idempotent
    def post(self, request: Request, session_id: str, operation_id: str) -> Response:
        return self.finish(request, s.OperationErrorIn, "error", operation_id)
