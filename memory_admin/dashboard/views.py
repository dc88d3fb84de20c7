"""Dashboard pages (server-rendered) and the project's error pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone

from compliance_app.selectors import oldest_open
from memory_admin.api.errors import api_not_found, api_server_error, json_error
from memory_admin.dashboard.access import staff_page
from memory_admin.dashboard.selectors import active_embedder, overview_counts, write_rates
from memory_admin.health import all_layers


class LoginView(auth_views.LoginView):
    """Django's login page; a member already logged in goes on to the page they were sent to, or to the
    overview when that is the login page itself (Django answers that one with a 500, a redirect loop)."""

    redirect_authenticated_user = True

    def get_redirect_url(self) -> str:
        url = super().get_redirect_url()
        return "" if urlsplit(url).path == self.request.path else url


@staff_page()
def overview(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/overview.html",
        {
            "layers": all_layers(),
            "counts": overview_counts(),
            "rates": write_rates(),
            "embedder": active_embedder(),
            "oldest_erasure": oldest_open(),
            "now": timezone.now(),
        },
    )


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return json_error(request, 400, "bad_request", "The request was rejected as malformed.")
    return render(request, "errors/400.html", status=400)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return json_error(request, 403, "forbidden", "You do not have permission to do this.")
    return render(request, "errors/403.html", status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return api_not_found(request, exception)
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return api_server_error(request)
    return _static_page("errors/500.html", status=500)


def service_unavailable(request: HttpRequest) -> HttpResponse:
    """The page for a request that found PostgreSQL away (memory_admin.dashboard.middleware)."""
    response = _static_page("errors/503.html", status=503)
    response["Retry-After"] = "1"
    return response


def _static_page(template: str, *, status: int) -> HttpResponse:
    """An error page rendered without the request, so without context processors: nothing reads the session or
    the user (the navigation's roles), which are in the database that may be what failed."""
    return HttpResponse(render_to_string(template), status=status)
