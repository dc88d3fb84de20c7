"""The erasure API for a tenant's platform: file a forget-me request, poll it, fetch its receipt.

Approval is for the operator's compliance staff, in the dashboard; an agent key cannot approve.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from compliance_app import selectors, services
from compliance_app.api.serializers import ErasureIn, ErasureOut
from memory_admin.api.idempotency import idempotent
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
            tenant=self.tenant, filed_by=f"api-key:{principal.api_key.prefix}", **body.validated_data
        )
        return Response(ErasureOut(erasure).data, status=status.HTTP_201_CREATED)


class ErasureDetailView(AgentAPIView):
    @extend_schema(responses=ErasureOut)
    def get(self, request: Request, request_id: str) -> Response:
        return Response(ErasureOut(selectors.get_erasure(request_id=request_id, tenant=self.tenant)).data)


class ErasureReceiptView(AgentAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, request_id: str) -> Response:
        erasure = selectors.get_erasure(request_id=request_id, tenant=self.tenant)
        return Response(selectors.receipt(erasure))
