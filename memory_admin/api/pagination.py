"""Cursor pagination for collections that grow without bound: stable under inserts, O(page) per request."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class NewestFirstCursor(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


class VersionCursor(CursorPagination):
    """Oldest first by a per-parent version number (events of a stream)."""

    ordering = ("version",)
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
