"""The catalogue the generic suites run over finds every API route, and each route answers a real call."""

from __future__ import annotations

from typing import Any

import pytest

from sessions_app.api import urls as session_urls
from tests.api.catalogue import ROUTES, WRITE_METHODS, Route, calls, params_for
from tests.api.checks import assert_error_shape
from tests.api.recipes import AcmeObjects, real_call, send, send_raw, why_no_path, why_not_callable

pytestmark = pytest.mark.django_db

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def test_the_catalogue_holds_every_sessions_route() -> None:
    catalogued = {route.name for route in ROUTES}
    missing = [pattern.name for pattern in session_urls.urlpatterns if pattern.name not in catalogued]
    assert not missing


def test_every_sessions_route_can_be_called_for_real() -> None:
    gaps = [
        f"{method} {route.template}: {why_not_callable(route, method)}"
        for route in ROUTES
        if route.app == "sessions_app"
        for method in route.methods
        if why_not_callable(route, method)
    ]
    assert not gaps


def test_every_route_answers_at_least_one_method() -> None:
    assert all(route.methods for route in ROUTES)
    assert {"GET"} <= {method for route in ROUTES for method in route.methods}


@pytest.mark.parametrize(("route", "method"), params_for(calls(), skip=why_not_callable))
def test_a_representative_call_of_every_route_succeeds(route: Route, method: str, objs: AcmeObjects) -> None:
    response = send(objs.client, method, real_call(route, method, objs))
    assert 200 <= response.status_code < 300, response.content[:500]


def _unallowed(route: Route) -> list[str]:
    return [method for method in ALL_METHODS if method not in route.methods]


@pytest.mark.parametrize(
    ("route", "method"),
    params_for([(route, method) for route in ROUTES for method in _unallowed(route)], skip=why_no_path),
)
def test_a_method_a_route_does_not_answer_is_a_405_naming_the_allowed_ones(
    route: Route, method: str, objs: AcmeObjects
) -> None:
    call = real_call(route, "GET", objs)
    body: Any = {} if method in WRITE_METHODS else None
    response = send_raw(
        objs.client, method, call.url, b"{}" if body is not None else b"", content_type="application/json"
    )
    assert_error_shape(response, 405, "method_not_allowed")
    allowed = {item.strip() for item in response["Allow"].split(",")}
    assert set(route.methods) <= allowed
    if method in WRITE_METHODS:  # without a body too: the method is what is wrong, not the missing body
        bodiless = send_raw(objs.client, method, call.url, b"", content_type="application/json")
        assert_error_shape(bodiless, 405, "method_not_allowed")
