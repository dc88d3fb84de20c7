"""Pages while PostgreSQL cannot be reached: a 503 page that says to try again (with Retry-After, as the API's
503), not a 500; and the error pages render without the database, which their context must not reach for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory
from structlog.testing import capture_logs

from conftest import World, logged_in
from memory_admin.dashboard.views import server_error

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def _postgres_unreachable(port: int) -> Iterator[None]:
    """This process's database connection goes to a port nothing listens on, as while the server is down."""
    settings_dict = connection.settings_dict
    served_on = settings_dict["PORT"]
    connection.close()
    settings_dict["PORT"] = port
    try:
        yield
    finally:
        connection.close()
        settings_dict["PORT"] = served_on


def test_pages_answer_503_with_retry_after_while_postgres_is_unreachable(world: World, unused_tcp_port: int) -> None:
    page = logged_in(world.admin)

    with _postgres_unreachable(unused_tcp_port):
        answers = {path: page.get(path) for path in ("/", "/sessions/", "/compliance/erasures/", "/login/")}

    for path, response in answers.items():
        assert response.status_code == 503, (path, response.status_code)
        assert response["Retry-After"] == "1" and response["Content-Type"].startswith("text/html")
        assert b"<h1>The database is unavailable</h1>" in response.content, path
    assert page.get("/").status_code == 200  # the next request, with PostgreSQL back, is served


def test_the_500_page_renders_without_the_database(world: World, unused_tcp_port: int) -> None:
    # A logged-in member's request, as the middleware leaves it: the user is read from the session when used.
    request = RequestFactory().get("/sessions/")
    request.COOKIES[settings.SESSION_COOKIE_NAME] = logged_in(world.admin).cookies[settings.SESSION_COOKIE_NAME].value
    SessionMiddleware(lambda request: HttpResponse()).process_request(request)
    AuthenticationMiddleware(lambda request: HttpResponse()).process_request(request)

    with _postgres_unreachable(unused_tcp_port):
        response = server_error(request)

    assert response.status_code == 500
    assert b"<h1>Something went wrong</h1>" in response.content


def test_the_outage_is_logged_with_the_pages_route_not_its_path_which_names_a_person(
    world: World, unused_tcp_port: int
) -> None:
    page = logged_in(world.admin)
    path = f"/users/{world.acme.tenant.pk}/alice@example.com/"

    with _postgres_unreachable(unused_tcp_port), capture_logs() as logs:
        response = page.get(path)

    assert response.status_code == 503
    [logged] = [entry for entry in logs if entry["event"] == "layer_unavailable"]
    assert logged["route"] and "<" in logged["route"]
    assert "alice" not in str(logs)
