"""The erasure and export API for a tenant's platform: file a forget-me request, poll it, fetch its receipt;
file an export of everything held about a person, poll it, download the archive.

Approval is for the operator's compliance staff, in the dashboard; an agent key cannot approve.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from compliance_app import selectors, services
from compliance_app.api.serializers import ErasureIn, ErasureOut, ExportIn, ExportOut
from compliance_app.models import ExportRequest
from memory_admin.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from memory_admin.api.idempotency import idempotent, stored_key
from memory_admin.api.pagination import NewestFirstCursor
from memory_admin.api.views import AgentAPIView
from tenants_app.authentication import AgentPrincipal


class ErasureNewestFirst(NewestFirstCursor):
    ordering = ("-filed_at", "-id")


class ErasureListView(AgentAPIView):
    pagination_class = ErasureNewestFirst
    serializer_class = ErasureOut

    @extend_schema(responses=ErasureOut(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.erasure_requests(self.tenant))
        return self.get_paginated_response(ErasureOut(page, many=True).data)

    @extend_schema(request=ErasureIn, responses={201: ErasureOut})
    @idempotent
    def post(self, request: Request) -> Response:
        body = ErasureIn(data=request.data)
        body.is_valid(raise_exception=True)
        principal = request.user
        assert isinstance(principal, AgentPrincipal)
        erasure = services.file_erasure(
            tenant=self.tenant,
            filed_by=f"api-key:{principal.api_key.prefix}",
            idempotency_key=_idempotency_key(request),
            **body.validated_data,
        )
        return Response(ErasureOut(erasure).data, status=status.HTTP_201_CREATED)


class ErasureDetailView(AgentAPIView):
    @extend_schema(responses=ErasureOut)
    def get(self, request: Request, request_id: str) -> Response:
        return Response(ErasureOut(selectors.get_erasure(request_id=request_id, tenant=self.tenant)).data)


class ErasureReceiptView(AgentAPIView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, 409: OpenApiResponse(description="The erasure is not verified (yet).")}
    )
    def get(self, request: Request, request_id: str) -> Response:
        erasure = selectors.get_erasure(request_id=request_id, tenant=self.tenant)
        return Response(selectors.receipt(erasure))


def _idempotency_key(request: Request) -> str | None:
    return stored_key(request.method or "", request.path, request.headers.get(IDEMPOTENCY_HEADER))


def _key_actor(request: Request) -> str:
    principal = request.user
    assert isinstance(principal, AgentPrincipal)
    return f"api-key:{principal.api_key.prefix}"


class ExportNewestFirst(NewestFirstCursor):
    ordering = ("-filed_at", "-id")


class ExportListView(AgentAPIView):
    pagination_class = ExportNewestFirst
    serializer_class = ExportOut

    @extend_schema(responses=ExportOut(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.export_requests(self.tenant))
        return self.get_paginated_response(ExportOut(page, many=True).data)

    @extend_schema(request=ExportIn, responses={201: ExportOut})
    @idempotent
    def post(self, request: Request) -> Response:
        body = ExportIn(data=request.data)
        body.is_valid(raise_exception=True)
        export = services.file_export(
            tenant=self.tenant,
            filed_by=_key_actor(request),
            idempotency_key=_idempotency_key(request),
            **body.validated_data,
        )
        return Response(ExportOut(export).data, status=status.HTTP_201_CREATED)


class ExportDetailView(AgentAPIView):
    @extend_schema(responses=ExportOut)
    def get(self, request: Request, export_id: str) -> Response:
        return Response(ExportOut(selectors.get_export(export_id=export_id, tenant=self.tenant)).data)


class ExportArchiveView(AgentAPIView):
    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The archive (zip)."),
            409: OpenApiResponse(description="Not ready yet."),
            410: OpenApiResponse(description="Expired, or withdrawn because the person was erased."),
        },
        parameters=[
            OpenApiParameter(
                "X-Archive-SHA256",
                {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                OpenApiParameter.HEADER,
                required=True,
                response=[200],
                description="The archive's SHA-256 (hex), to check the download against.",
            ),
            OpenApiParameter(
                "Content-Disposition",
                str,
                OpenApiParameter.HEADER,
                required=True,
                response=[200],
                description='attachment; filename="export-<id>.zip"',
            ),
        ],
    )
    def get(self, request: Request, export_id: str) -> HttpResponse:
        export, archive = services.download_export(export_id=export_id, actor=_key_actor(request), tenant=self.tenant)
        return _archive_response(export, archive, size=len(archive))

    def head(self, request: Request, export_id: str) -> HttpResponse:
        """What a GET would answer, without the bytes: neither counted nor audited as a download."""
        export, size = selectors.downloadable_export(export_id=export_id, tenant=self.tenant)
        return _archive_response(export, b"", size=size)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # The archive is a zip whatever renders the errors (JSON): an Accept that takes the zip is served.
        if _takes_archive(request.META.get("HTTP_ACCEPT", "")):
            renderer = self.get_renderers()[0]
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)


_ARCHIVE_TYPES = frozenset({"", "*/*", "application/*", "application/zip", "application/octet-stream"})


def _takes_archive(accept: str) -> bool:
    """Whether an Accept header takes the zip: a range that covers it, not weighted q=0."""
    for item in accept.split(","):
        media, *parameters = (part.strip().lower() for part in item.split(";"))
        weights = [value for name, _, value in (p.partition("=") for p in parameters) if name.strip() == "q"]
        if media in _ARCHIVE_TYPES and not any(_is_zero(weight) for weight in weights):
            return True
    return False


def _is_zero(weight: str) -> bool:
    try:
        return float(weight) == 0
    except ValueError:
        return False


def _archive_response(export: ExportRequest, body: bytes, *, size: int) -> HttpResponse:
    response = HttpResponse(body, content_type="application/zip")
    response["Content-Length"] = str(size)
    response["Content-Disposition"] = f'attachment; filename="export-{export.pk}.zip"'
    response["X-Archive-SHA256"] = export.archive_sha256
    return response
