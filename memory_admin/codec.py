"""The payload codec: the one seam through which event and checkpoint payloads are written and read.

Stored payloads are bytes that say how they were written: a one-byte tag, then the body. Today every writer
writes plain JSON (tag `J`); the compliance layer adds per-person encryption behind the same two functions,
so callers never change. Readers accept every tag ever written.

`schema_version` describes the shape of the JSON inside (what fields an event or checkpoint payload has);
readers upgrade older shapes on the way out, writers always write `SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
from typing import Any

from memory_admin.errors import IntegrityFailure

SCHEMA_VERSION = 1
PLAIN_JSON = b"J"


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 (not canonical; for storage and transport)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no whitespace, UTF-8. Input to checksums."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def encode_payload(value: Any, *, tenant_id: object, user_id: str) -> bytes:
    """Serialise a payload for storage. `tenant_id` and `user_id` name whose data it is."""
    return PLAIN_JSON + dumps(value)


def decode_payload(blob: bytes | memoryview, *, tenant_id: object, user_id: str) -> Any:
    """Read back a stored payload, whichever way it was written."""
    data = bytes(blob)
    tag, body = data[:1], data[1:]
    if tag == PLAIN_JSON:
        return json.loads(body)
    raise IntegrityFailure("A stored payload has an unknown encoding.", details={"tag": tag.hex()})
