"""Optimistic concurrency over HTTP: ETags carry a resource's version; If-Match makes an update conditional."""

from __future__ import annotations

import re

from rest_framework.request import Request

from memory_admin.errors import PreconditionFailed


def etag(version: int) -> str:
    return f'"{version}"'


# One strong ETag of this API: a version number in quotes.
_TAG = re.compile(r'"([0-9]{1,18})"', re.ASCII)
# Any entity tag (RFC 9110 8.8.3): a quoted string without quotes or spaces, weak (W/) or strong.
_ENTITY_TAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"')


def if_match_any(request: Request) -> bool:
    """Whether If-Match is `*`: true of any version of the resource, false when it does not exist (RFC 9110
    13.1.1), which matters where an update can create the resource."""
    return (request.headers.get("If-Match") or "").strip() == "*"


def if_match_versions(request: Request) -> set[int] | None:
    """The versions an If-Match header accepts; None when there is no header or it is `*` (any version: see
    `if_match_any` for a resource that may not exist yet).

    A header that is there is a condition, even when empty (RFC 9110 13.1.1): it holds when one of its strong
    tags is this API's tag of the current version. Weak tags (`W/`), which If-Match's strong comparison never
    matches, and tags this API never gives match nothing, so a header of only those is a 412 with the current
    version; one that is not a list of entity tags at all is a 412 that says so.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tags = _ENTITY_TAG.findall(header)
    if _ENTITY_TAG.sub("", header).strip(", \t"):  # something besides tags and the commas between them
        raise PreconditionFailed(
            'If-Match must hold strong ETags from this API (for example "3") or *.', details={"if_match": header}
        )
    return {int(tag[1]) for text in tags if (tag := _TAG.fullmatch(text)) is not None}
