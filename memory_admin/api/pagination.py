"""Cursor pagination for collections that grow without bound: stable under inserts, O(page) per request."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, QuerySet
from rest_framework.exceptions import NotFound as DrfNotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from memory_admin.errors import ValidationFailed

# A position longer than this was not written by the API (a timestamp or a bigint is far shorter).
_MAX_POSITION = 64


class CheckedCursor(CursorPagination):
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


class NewestFirstCursor(CheckedCursor):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


class VersionCursor(CheckedCursor):
    """Oldest first by a per-parent version number (events of a stream)."""

    ordering = ("version",)
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
