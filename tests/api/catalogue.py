"""Every route under /api/v1/, found by walking Django's URL resolver, with the HTTP methods its view answers.

The generic suites parametrize over this catalogue, so a route another app adds is covered the moment its
urls.py is wired in: its GETs and DELETEs as soon as its path parameters can be filled (see recipes.py), its
writes as soon as a request-body recipe names a valid body for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

API_PREFIX = "/api/v1/"
WRITE_METHODS = ("POST", "PUT", "PATCH")
# HEAD and OPTIONS come with every DRF view; they are not endpoints of their own.
_IGNORED_METHODS = {"head", "options", "trace"}
_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Route:
    """One URL pattern under /api/v1/."""

    name: str  # the URL name inside the `api` namespace, e.g. "session-detail"
    template: str  # OpenAPI-style path, e.g. "/api/v1/sessions/{session_id}"
    params: tuple[str, ...]
    converters: tuple[tuple[str, str], ...]  # (parameter, converter name) pairs
    view_class: type[Any]
    methods: tuple[str, ...]  # upper-case, e.g. ("GET", "PATCH")

    @property
    def app(self) -> str:
        return self.view_class.__module__.split(".")[0]

    def url(self, values: dict[str, str]) -> str:
        """The path with every parameter filled (each value percent-encoded as one path segment)."""
        return self.template.format(**{name: quote(str(values[name]), safe="") for name in self.params})

    def handler(self, method: str) -> Any:
        return getattr(self.view_class, method.lower())


def _walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            full = prefix + str(entry.pattern)
            if full.startswith(API_PREFIX) and not isinstance(entry.pattern, RoutePattern):
                raise AssertionError(f"{full}: the catalogue only understands path() routes under {API_PREFIX}")
            yield full, entry


def _methods(view_class: type[Any]) -> tuple[str, ...]:
    names = getattr(view_class, "http_method_names", [])
    return tuple(name.upper() for name in names if name not in _IGNORED_METHODS and hasattr(view_class, name))


def endpoint_catalogue() -> list[Route]:
    """Every route whose path starts with /api/v1/, in URL order."""
    routes = []
    for raw, pattern in _walk(get_resolver().url_patterns, "/"):
        if not raw.startswith(API_PREFIX):
            continue
        view_class = getattr(pattern.callback, "view_class", None)
        if view_class is None:
            raise AssertionError(f"{raw}: every API route is a class-based DRF view")
        matches = list(_PARAMETER.finditer(raw))
        routes.append(
            Route(
                name=pattern.name or raw,
                template=_PARAMETER.sub(lambda match: "{" + match["name"] + "}", raw),
                params=tuple(match["name"] for match in matches),
                converters=tuple((match["name"], match["converter"] or "str") for match in matches),
                view_class=view_class,
                methods=_methods(view_class),
            )
        )
    return routes


ROUTES = endpoint_catalogue()


def call_id(route: Route, method: str) -> str:
    return f"{method} {route.template}"


def calls(*, methods: tuple[str, ...] | None = None) -> list[tuple[Route, str]]:
    """(route, method) for every method of every route, optionally only the given methods."""
    return [(route, method) for route in ROUTES for method in route.methods if methods is None or method in methods]


def params_for(pairs: list[tuple[Route, str]], skip: Any = None, extra: list[Any] | None = None) -> list[Any]:
    """pytest.params over (route, method[, extra…]); `skip(route, method)` names why a call cannot be made.

    Every route must be exercised: one that cannot be (a new endpoint without a recipe) stops collection with
    the reason, instead of passing unnoticed.
    """
    result = []
    for route, method in pairs:
        reason = skip(route, method) if skip is not None else None
        for item in extra if extra is not None else [None]:
            values: tuple[Any, ...] = (route, method) if extra is None else (route, method, item)
            test_id = call_id(route, method) if extra is None else f"{call_id(route, method)} {item}"
            if reason:
                raise RuntimeError(f"{test_id} cannot be exercised: {reason} (add it to tests/api/recipes.py)")
            result.append(pytest.param(*values, id=test_id))
    return result
