"""Cursor pagination for collections that grow without bound: stable under inserts, O(page) per request."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Field, QuerySet
from django.db.models.fields.tuple_lookups import (  # type: ignore[import-untyped]  # Django ships no stubs for it
    Tuple,
    TupleGreaterThan,
    TupleLessThan,
)
from rest_framework.exceptions import NotFound as DrfNotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

from memory_admin.errors import ValidationFailed

# A position longer than this was not written by the API (a timestamp or a bigint is far shorter).
_MAX_POSITION = 64
_MAX_CURSOR = 512


class _StrictLimit(CursorPagination):
    """`limit` is 1 to `max_page_size` or a 400 naming the range (DRF put a default page in place of a malformed
    or too large one, silently); the schema documents the range."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get("limit")
        if raw is None:
            return int(self.page_size)
        most = int(self.max_page_size)
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= most):
            raise ValidationFailed(
                f"limit must be a whole number from 1 to {most}.",
                details={"field": "limit", "minimum": 1, "maximum": most},
            )
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == "limit":
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
                parameter["description"] = f"Items per page, 1 to {self.max_page_size} ({self.page_size} if absent)."
        return parameters


class CheckedCursor(_StrictLimit):
    """DRF's cursor pagination, with the cursor checked before it reaches a query: a cursor the API did not
    give out (undecodable, or edited so that its position is no longer a value of the ordering field) is a
    400, where DRF answers 404 for the first and lets the second fail inside the query."""

    _position_field: Field[Any, Any] | None = None

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: Any = None) -> list[Any] | None:
        try:
            self._position_field = queryset.model._meta.get_field(self.ordering[0].lstrip("-"))
        except FieldDoesNotExist:
            self._position_field = None
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor: Cursor | None = super().decode_cursor(request)
        except DrfNotFound:
            raise _invalid() from None
        if cursor is None or cursor.position is None or self._position_field is None:
            return cursor
        position = str(cursor.position)
        if len(position) > _MAX_POSITION or "\x00" in position:
            raise _invalid()
        try:
            self._position_field.to_python(position)
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise _invalid() from None
        return cursor


def _invalid() -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not one this API gave out; start again without it.", details={"field": "cursor"}
    )


class NewestFirstCursor(_StrictLimit):
    """Newest first, paged by a keyset: the `ordering` fields, all descending, whose values together are unique
    (the last breaks ties, such as the id). A cursor holds the position of the last row of the page it came
    from (`next`) or of the first (`previous`), and a page reads the rows beyond it with one row comparison,
    `(created_at, id) < (…)`, which the (created_at DESC, id DESC) indexes answer by a range: rows made in one
    batch (one timestamp) are neither skipped nor repeated, whichever way a client walks. An empty page (its
    rows deleted since) has no links. A cursor the API did not give out is a 400."""

    ordering: tuple[str, ...] = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    _next: str | None = None
    _previous: str | None = None

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: Any = None) -> list[Any] | None:
        self.request = request
        size = self.get_page_size(request)
        if not size:
            return None
        self.page_size = size
        self.base_url = url = request.build_absolute_uri()
        fields = [queryset.model._meta.get_field(name.lstrip("-")) for name in self.ordering]
        names = [field.attname for field in fields]
        backwards, position = self._position(request, fields)
        key = Tuple(*(F(name) for name in names))
        if position is None:
            rows = queryset.order_by(*self.ordering)
        elif backwards:
            rows = queryset.filter(TupleGreaterThan(key, position)).order_by(*names)
        else:
            rows = queryset.filter(TupleLessThan(key, position)).order_by(*self.ordering)
        found = list(rows[: size + 1])
        more = len(found) > size
        page = found[:size]
        if backwards:
            page.reverse()
        # Forwards, there is a next page when a row was left over and a previous one when a cursor led here;
        # backwards, the other way round.
        has_next, has_previous = (True, more) if backwards else (more, position is not None)
        self._next = self._previous = None
        if page and has_next:
            self._next = _link(url, "n", [getattr(page[-1], name) for name in names])
        if page and has_previous:
            self._previous = _link(url, "p", [getattr(page[0], name) for name in names])
        self.display_page_controls = bool(self._next or self._previous)
        return page

    def get_next_link(self) -> str | None:
        return self._next

    def get_previous_link(self) -> str | None:
        return self._previous

    def _position(self, request: Request, fields: list[Field[Any, Any]]) -> tuple[bool, tuple[Any, ...] | None]:
        """(backwards, the position's values) from the request's cursor; (False, None) without one."""
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return False, None
        try:
            if len(raw) > _MAX_CURSOR:
                raise ValueError("too long")
            decoded = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
            if not isinstance(decoded, list) or len(decoded) != len(fields) + 1 or decoded[0] not in ("n", "p"):
                raise ValueError("not a position")
            direction, *texts = decoded
            for text in texts:
                if not isinstance(text, str) or len(text) > _MAX_POSITION or "\x00" in text:
                    raise ValueError("not a value")
            values = tuple(_in_utc(field.clean(text, None)) for field, text in zip(fields, texts, strict=True))
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise _invalid() from None
        return direction == "p", values


def _in_utc(value: Any) -> Any:
    """A cursor's time in UTC: Postgres refuses the UTC offsets of ±16:00 and more that Python reads.
    OverflowError for a time that UTC would put outside the years Python has."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _link(url: str, direction: str, values: list[Any]) -> str:
    """`url` with the cursor of a position: its direction (n: older rows, p: newer ones) and values as text."""
    text = [value.isoformat() if isinstance(value, datetime) else str(value) for value in values]
    token = base64.urlsafe_b64encode(json.dumps([direction, *text]).encode()).decode()
    return str(replace_query_param(url, NewestFirstCursor.cursor_query_param, token))


class VersionCursor(CheckedCursor):
    """Oldest first by a per-parent version number (events of a stream)."""

    ordering = ("version",)
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
