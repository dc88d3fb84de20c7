"""Probes for orchestrators and Prometheus: liveness, readiness, metrics."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django_prometheus.exports import ExportToDjangoView

from memory_admin.api.errors import json_error
from memory_admin.health import check_postgres, check_redis, check_workers
from tenants_app.roles import Role, has_role


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving; it says nothing about the layers behind it."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when Postgres (with pgvector) and Redis answer; 503 with the failing layer otherwise."""
    layers = [*check_postgres(), check_redis(), check_workers()]
    ready = all(layer.ok for layer in layers if layer.required)
    body = {"status": "ready" if ready else "unavailable", "layers": {layer.name: layer.as_dict() for layer in layers}}
    return JsonResponse(body, status=200 if ready else 503)


def _metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    if has_role(request.user, Role.ADMIN):
        return True
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; not public: loopback, an admin's session, or `Bearer $METRICS_TOKEN`."""
    if not _metrics_allowed(request):
        return json_error(request, 403, "forbidden", "Metrics need METRICS_TOKEN or a loopback caller.")
    response: HttpResponse = ExportToDjangoView(request)
    return response
