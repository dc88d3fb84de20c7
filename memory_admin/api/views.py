"""The base every agent-facing API view stands on."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from memory_admin.api.query import refuse_unknown
from memory_admin.api.throttling import ApiKeyRateThrottle
from tenants_app.authentication import tenant_of
from tenants_app.models import Tenant

_TAKES_JSON = frozenset({"", "*/*", "application/json"})


class AgentAPIView(GenericAPIView):  # type: ignore[type-arg]
    """API-key authenticated, rate limited, scoped to the caller's tenant.

    Views read `self.tenant` and pass it to selectors and services, which filter by it: a row of another
    tenant is simply not found (404), never revealed. Unsafe methods are decorated with `@idempotent`.
    """

    throttle_classes = [ApiKeyRateThrottle]

    @property
    def tenant(self) -> Tenant:
        return tenant_of(self.request)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # DRF hands an empty body to no parser and treats it as {}; every write here expects a JSON document.
        # A method the view does not take is left to DRF's 405 (with Allow), whatever its body.
        method = request.method or ""
        if method in ("POST", "PUT", "PATCH") and hasattr(self, method.lower()) and not request.body.strip():
            raise ParseError("The request body is empty; send a JSON document.")
        if request.query_params and request.resolver_match is not None:
            refuse_unknown(method, request.resolver_match.route, set(request.query_params))

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # JSON is the only rendering; an Accept header that takes it needs no parsing. Others go through DRF,
        # which answers 406 to what cannot be served.
        if request.META.get("HTTP_ACCEPT", "*/*") in _TAKES_JSON:
            renderer = self.get_renderers()[0]
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        rate = getattr(request, "rate_limit", None)
        if rate is not None:
            response["X-RateLimit-Limit"] = str(rate[0])
            response["X-RateLimit-Remaining"] = str(rate[1])
        return response
