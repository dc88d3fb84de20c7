"""This app's routes under /api/v1/ (no trailing slashes)."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []
