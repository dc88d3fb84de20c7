"""How a checkpoint is stored and how its checksum is computed, version by version.

Stored `payload` bytes (schema version 1):

    payload = tag + body
    tag     = b"p" (written today: the codec itself compresses, before it encrypts per person)
            | b"z" (read only: body is zlib-compressed, as written before the codec compressed)
    body    = codec.encode_payload(envelope)       # compressed and encrypted with the person's key
    envelope = {"state": {...}}                    # kind "full"
             | {"patch": [...RFC 6902 ops]}        # kind "delta": turns the parent's state into this one

Checksum (schema version 1): SHA-256, hex, over the canonical JSON of

    {"metadata": {...}, "node_id": "...", "parent": "<parent checksum>" | null, "sequence": n,
     "state": {...the full state...}, "v": 1}

An envelope object rather than concatenated strings, so no two different inputs share a byte string. A
client that knows its parent's checksum and the sequence it expects can compute the same value.

Writers always write `CURRENT_SCHEMA_VERSION`. To add version 2, write `_read_v2` / `_checksum_v2` and add
them to the two tables below; rows of version 1 keep being read by the version-1 functions.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memory_admin.codec import canonical_json, decode_payload, encode_payload
from memory_admin.errors import IntegrityFailure

CURRENT_SCHEMA_VERSION = 1

ZLIB = b"z"
PLAIN = b"p"


@dataclass(frozen=True)
class Body:
    """A decoded payload: exactly one of `state` (full) and `patch` (delta) is set."""

    state: dict[str, Any] | None = None
    patch: list[Any] | None = None


@dataclass(frozen=True)
class Owner:
    """Whose data a payload is, as the codec needs it."""

    tenant_id: object
    user_id: str


def encode_body(body: Body, *, owner: Owner) -> bytes:
    """The bytes to store for `body`, in the newest schema version."""
    envelope: dict[str, Any] = {"state": body.state} if body.state is not None else {"patch": body.patch}
    # Compressing here would come after the codec's encryption, where it saves nothing.
    return PLAIN + encode_payload(envelope, tenant_id=owner.tenant_id, user_id=owner.user_id)


def _unwrap(blob: bytes | memoryview) -> bytes:
    data = bytes(blob)
    tag, rest = data[:1], data[1:]
    if tag == PLAIN:
        return rest
    if tag == ZLIB:
        try:
            return zlib.decompress(rest)
        except zlib.error:
            raise ValueError("the compressed payload is corrupt") from None
    raise ValueError("the payload has an unknown storage tag")


def _read_v1(blob: bytes | memoryview, kind: str, owner: Owner) -> Body:
    envelope = decode_payload(_unwrap(blob), tenant_id=owner.tenant_id, user_id=owner.user_id)
    if not isinstance(envelope, dict):
        raise ValueError("the payload is not an object")
    if kind == "full" and isinstance(envelope.get("state"), dict) and set(envelope) == {"state"}:
        return Body(state=envelope["state"])
    if kind == "delta" and isinstance(envelope.get("patch"), list) and set(envelope) == {"patch"}:
        return Body(patch=envelope["patch"])
    raise ValueError(f"the payload does not hold what a {kind!r} checkpoint holds")


def _checksum_v1(*, parent_checksum: str | None, sequence: int, node_id: str, metadata: Any, state_json: bytes) -> str:
    # Exactly canonical_json({"metadata", "node_id", "parent", "sequence", "state", "v"}) (keys in sorted
    # order), assembled around the state's canonical bytes so callers serialise a large state only once.
    digest = hashlib.sha256(b'{"metadata":')
    digest.update(canonical_json(metadata))
    digest.update(b',"node_id":' + canonical_json(node_id))
    digest.update(b',"parent":' + canonical_json(parent_checksum))
    digest.update(b',"sequence":' + canonical_json(sequence))
    digest.update(b',"state":')
    digest.update(state_json)
    digest.update(b',"v":1}')
    return digest.hexdigest()


_READERS: dict[int, Callable[[bytes | memoryview, str, Owner], Body]] = {1: _read_v1}
_CHECKSUMS: dict[int, Callable[..., str]] = {1: _checksum_v1}


def read_body(blob: bytes | memoryview, *, kind: str, schema_version: int, owner: Owner) -> Body:
    """Decode a stored payload of any version; ValueError (with a reason) when it cannot be read."""
    reader = _READERS.get(schema_version)
    if reader is None:
        raise ValueError(f"schema version {schema_version} is unknown to this server")
    try:
        return reader(blob, kind, owner)
    except IntegrityFailure as exc:  # the codec met an encoding it does not know
        raise ValueError(exc.message) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(str(exc) or "the payload is not valid JSON") from None


def chain_checksum(
    *,
    schema_version: int = CURRENT_SCHEMA_VERSION,
    parent_checksum: str | None,
    sequence: int,
    node_id: str,
    metadata: Any,
    state_json: bytes,
) -> str:
    """The checksum of one link by the formula of `schema_version`; `state_json` is canonical_json(state).

    ValueError for an unknown version or metadata that is not JSON (an out-of-range float, say).
    """
    formula = _CHECKSUMS.get(schema_version)
    if formula is None:
        raise ValueError(f"schema version {schema_version} is unknown to this server")
    return formula(
        parent_checksum=parent_checksum, sequence=sequence, node_id=node_id, metadata=metadata, state_json=state_json
    )
