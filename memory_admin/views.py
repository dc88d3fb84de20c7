"""Probes for orchestrators and Prometheus: liveness, readiness, metrics."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST

from memory_admin.api.errors import json_error
from memory_admin.health import readiness
from memory_admin.metrics import exposition, scrape_allowed
from tenants_app.roles import Role, has_role


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving; it says nothing about the layers behind it."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when Postgres (with pgvector) answers; 503 with the failing layer otherwise (see `readiness`).
    The web server answers it before Django (memory_admin.api.handler); this view serves other servers."""
    status, body = readiness()
    return JsonResponse(body, status=status)


def _metrics_allowed(request: HttpRequest) -> bool:
    # The web server answers the first two before Django (memory_admin.api.handler), whatever the Host.
    return scrape_allowed(request.headers.get("Authorization", ""), request.META.get("REMOTE_ADDR", "")) or has_role(
        request.user, Role.ADMIN
    )


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; not public: loopback, an admin's session, or `Bearer $METRICS_TOKEN`."""
    if not _metrics_allowed(request):
        return json_error(request, 403, "forbidden", "Metrics need METRICS_TOKEN or a loopback caller.")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
