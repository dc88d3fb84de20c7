"""Which query parameters each API operation takes: the ones its OpenAPI schema documents, nothing else.

A query parameter the operation does not know is refused (400) instead of ignored: `?user=bob` on the session
list would otherwise answer every user's sessions, and `?limt=5` a page of the default size. The table is
read from the schema the API serves (drf-spectacular), so the schema stays the one list of what a route reads:
a view that reads a parameter the schema does not document refuses it, and its tests say so.
"""

from __future__ import annotations

import re
from functools import cache

from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from memory_admin.errors import ValidationFailed

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
_METHODS = ("get", "post", "put", "patch", "delete")


@cache
def documented() -> dict[tuple[str, str], frozenset[str]]:
    """(METHOD, path template as the schema writes it) -> the query parameters documented for it."""
    with GENERATOR_STATS.silence():
        generator = SchemaGenerator()  # type: ignore[no-untyped-call]
        schema = generator.get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    table: dict[tuple[str, str], frozenset[str]] = {}
    for template, operations in schema["paths"].items():
        for method in _METHODS:
            operation = operations.get(method)
            if operation is not None:
                names = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}
                table[method.upper(), template] = frozenset(names)
    return table


def template_of(route: str) -> str:
    """Django's route of a request (`api/v1/sessions/<str:session_id>`) as the schema writes its path."""
    return "/" + _CONVERTER.sub(r"{\1}", route)


def refuse_unknown(method: str, route: str, names: set[str]) -> None:
    """Raise ValidationFailed when the request names a query parameter its operation does not document.

    HEAD is read as GET; a method or route the schema does not list (OPTIONS) is left alone."""
    if not names:
        return
    accepted = documented().get(("GET" if method == "HEAD" else method, template_of(route)))
    if accepted is None:
        return
    unknown = sorted(names - accepted)
    if unknown:
        raise ValidationFailed(
            f"Unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
            details={"unknown": unknown, "accepted": sorted(accepted)},
        )
