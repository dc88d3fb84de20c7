"""Optimistic concurrency over HTTP: ETags carry a resource's version; If-Match makes an update conditional."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from memory_admin.errors import PreconditionFailed


def etag(version: int) -> str:
    return f'"{version}"'


def if_match_versions(request: Request) -> set[int] | None:
    """The versions an If-Match header accepts; None when there is no header or it is `*` (any version)."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    versions: set[int] = set()
    for token in header.split(","):
        tag = token.strip().removeprefix("W/").strip('"')
        try:
            versions.add(int(tag))
        except ValueError:
            raise PreconditionFailed(
                'If-Match must hold ETags from this API (for example "3").', details={"if_match": header}
            ) from None
    return versions


def check_if_match(request: Request, *, current_version: int, current: Any = None) -> None:
    """Raise 412 with the current version (and representation) when If-Match names another version."""
    accepted = if_match_versions(request)
    if accepted is not None and current_version not in accepted:
        details: dict[str, Any] = {"current_version": current_version}
        if current is not None:
            details["current"] = current
        raise PreconditionFailed("The resource changed since you read it.", details=details)
