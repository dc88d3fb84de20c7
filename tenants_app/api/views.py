from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from memory_admin.api.views import AgentAPIView
from tenants_app.authentication import AgentPrincipal


class WhoAmIView(AgentAPIView):
    """The tenant and key behind the caller's API key: a cheap way for an agent to check its credentials."""

    @extend_schema(
        responses=inline_serializer(
            "WhoAmI", {"tenant": serializers.CharField(), "key_prefix": serializers.CharField()}
        )
    )
    def get(self, request: Request) -> Response:
        principal = request.user
        assert isinstance(principal, AgentPrincipal)  # guaranteed by IsTenantAgent
        return Response({"tenant": principal.tenant.name, "key_prefix": principal.api_key.prefix})
