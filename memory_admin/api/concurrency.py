"""Optimistic concurrency over HTTP: ETags carry a resource's version; If-Match makes an update conditional."""

from __future__ import annotations

import re

from rest_framework.request import Request

from memory_admin.errors import PreconditionFailed


def etag(version: int) -> str:
    return f'"{version}"'


# One strong ETag of this API: a version number in quotes.
_TAG = re.compile(r'"([0-9]{1,18})"', re.ASCII)


def if_match_any(request: Request) -> bool:
    """Whether If-Match is `*`: true of any version of the resource, false when it does not exist (RFC 9110
    13.1.1), which matters where an update can create the resource."""
    return (request.headers.get("If-Match") or "").strip() == "*"


def if_match_versions(request: Request) -> set[int] | None:
    """The versions an If-Match header accepts; None when there is no header or it is `*` (any version: see
    `if_match_any` for a resource that may not exist yet).

    A header that is there is a condition, even when empty: what matches no version of this API (empty, a
    weak `W/` tag, which If-Match's strong comparison never matches, or any other text) is a 412.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    versions: set[int] = set()
    for token in header.split(","):
        tag = _TAG.fullmatch(token.strip())
        if tag is None:
            raise PreconditionFailed(
                'If-Match must hold strong ETags from this API (for example "3") or *.', details={"if_match": header}
            )
        versions.add(int(tag[1]))
    return versions
