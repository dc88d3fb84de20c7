"""The payload codec: the one seam through which event, snapshot, operation and checkpoint payloads are
written and read.

Stored payloads are bytes that say how they were written — a one-byte tag, then the body:

    J  JSON (UTF-8)
    Z  zlib-compressed JSON
    E  encrypted: flags (1 byte: bit 0 = compressed before encryption), key id (16 bytes), nonce (12 bytes),
       AES-GCM ciphertext of the (compressed) JSON, authenticated with the key id
    B  opaque bytes a client serialised itself (LangGraph's typed channel values), stored as given; sealed
       ones use E with the same layout, the plaintext being those bytes (`seal_bytes` / `open_bytes`)

Writers encrypt with the person's data key whenever a key ring is installed (compliance_app installs one
at start-up); erasing a person destroys their key, so every copy of their payloads — in Postgres, backups,
replicas and archives — becomes unreadable at once. Readers accept every tag ever written, so rows written
before encryption existed stay readable until they are migrated (`manage.py encrypt_payloads`).

`schema_version` describes the shape of the JSON inside (what fields an event or checkpoint payload has);
readers upgrade older shapes on the way out, writers always write `SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson

from memory_admin.errors import Erased, IntegrityFailure

SCHEMA_VERSION = 1
PLAIN_JSON = b"J"
COMPRESSED_JSON = b"Z"
ENCRYPTED = b"E"
OPAQUE_BYTES = b"B"
# Below this size zlib's header costs more than it saves.
COMPRESS_FROM_BYTES = 256
_FLAG_COMPRESSED = 1
_KEY_ID_BYTES = 16
_NONCE_BYTES = 12


class Cipher(Protocol):
    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


class KeyRing(Protocol):
    """Per-person data keys (see compliance_app.keys)."""

    def key_for(self, tenant_id: object, user_id: str) -> tuple[bytes, Cipher]:
        """The person's key id and cipher, created on first use."""

    def cipher_by_id(self, key_id: bytes) -> Cipher | None:
        """The cipher of a key id, or None when the key was destroyed (the person was erased)."""


_keyring: KeyRing | None = None


def install_keyring(keyring: KeyRing | None) -> None:
    global _keyring
    _keyring = keyring


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 (not canonical; for storage and transport). orjson writes it, the json module what
    orjson cannot (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def response_json(value: Any) -> bytes:
    """A JSON response body exactly as the API's DRF renderer writes it, for what answers without DRF (the hot
    lane, error pages): compact, UTF-8, floats spelled as the json module spells them (orjson writes 1e-7 where
    it writes 1e-07, so a value holding a float goes to the json module) and U+2028 / U+2029 escaped."""
    if is_plain(value):
        body = dumps(value)
    else:
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    return escape_line_separators(body)


def escape_line_separators(body: bytes) -> bytes:
    """JSON text with U+2028 and U+2029 written as escapes, as DRF's renderer writes them (raw, they end a line
    of JavaScript)."""
    if b"\xe2\x80" not in body:
        return body
    return body.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029")


# orjson reads an integer beyond 64 bits as a float, rounded; such a float is always at least this large.
HUGE_FLOAT = 2.0**63


def loads(text: str | bytes) -> Any:
    """JSON text as Python values, exactly: orjson reads it, the json module when orjson would round (an integer
    beyond 64 bits, which orjson reads as a float of at least HUGE_FLOAT) or refuses it."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    return json.loads(text) if _holds_huge_float(value) else value


def _holds_huge_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if abs(item) >= HUGE_FLOAT:
                return True
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no whitespace, UTF-8. Input to checksums, so these bytes
    may never change: they are the json module's with these options, whoever computes them.

    orjson writes the very same bytes for every string (any code point, escapes included), key order and
    integer up to 64 bits, several times faster on a large state; only its floats are spelled differently
    (1e-7 where the json module writes 1e-07). So orjson's output is kept when the value is made of dicts,
    lists, tuples, strings, integers, booleans and None only; a float, or any other type (which orjson might
    write where the json module writes it otherwise or refuses it), goes to the json module, as does
    whatever orjson refuses.
    """
    if is_plain(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an integer beyond 64 bits, a key that is not text, nesting orjson refuses
            pass
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


_LEAVES = frozenset({str, int, bool, type(None)})


def is_plain(value: Any) -> bool:
    """Whether `value` is made of dicts, lists, tuples, strings, integers, booleans and None only (exactly
    these types: no float, no subclass). Walks the objects, not the text: a state of long messages is a few
    hundred objects but tens of kilobytes (a regex over its bytes looking for floats cost ~10x more).
    Nesting deeper than the interpreter allows is not plain."""
    kind = type(value)
    if kind is dict:
        items: Iterable[Any] = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind in _LEAVES
    try:
        for item in items:
            kind = type(item)
            if kind in _LEAVES:
                continue
            if (kind is not dict and kind is not list and kind is not tuple) or not is_plain(item):
                return False
    except RecursionError:
        return False
    return True


def encoder_for(*, tenant_id: object, user_id: str) -> Callable[[Any], bytes]:
    """An encoder bound to one person: looks their key up once, for writing a batch."""
    key = _keyring.key_for(tenant_id, user_id) if _keyring is not None else None

    def encode(value: Any) -> bytes:
        body = dumps(value)
        compressed = len(body) >= COMPRESS_FROM_BYTES
        if compressed:
            body = zlib.compress(body, 6)
        if key is None:
            return (COMPRESSED_JSON if compressed else PLAIN_JSON) + body
        key_id, cipher = key
        nonce = os.urandom(_NONCE_BYTES)
        flags = bytes([_FLAG_COMPRESSED if compressed else 0])
        return ENCRYPTED + flags + key_id + nonce + cipher.encrypt(nonce, body, key_id)

    return encode


def encode_payload(value: Any, *, tenant_id: object, user_id: str) -> bytes:
    """Serialise a payload for storage: compressed when large, encrypted with the person's key when possible."""
    return encoder_for(tenant_id=tenant_id, user_id=user_id)(value)


def decode_payload(blob: bytes | memoryview, *, tenant_id: object, user_id: str) -> Any:
    """Read back a stored payload, whichever way it was written.

    Raises Erased when the payload belonged to a person whose key was destroyed, and IntegrityFailure
    when the bytes are not a payload this codec wrote (or were tampered with).
    """
    data = bytes(blob)
    tag, body = data[:1], data[1:]
    try:
        if tag == PLAIN_JSON:
            return json.loads(body)
        if tag == COMPRESSED_JSON:
            return json.loads(zlib.decompress(body))
        if tag == ENCRYPTED:
            return json.loads(_decrypt(body))
    except (ValueError, zlib.error) as exc:
        raise IntegrityFailure("A stored payload cannot be read back.", details={"reason": str(exc)[:200]}) from None
    raise IntegrityFailure("A stored payload has an unknown encoding.", details={"tag": tag.hex()})


def _decrypt(body: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag

    flags = body[0]
    key_id = body[1 : 1 + _KEY_ID_BYTES]
    nonce = body[1 + _KEY_ID_BYTES : 1 + _KEY_ID_BYTES + _NONCE_BYTES]
    ciphertext = body[1 + _KEY_ID_BYTES + _NONCE_BYTES :]
    cipher = _keyring.cipher_by_id(key_id) if _keyring is not None else None
    if cipher is None:
        raise Erased("This data belonged to a person who was erased; it can no longer be read.")
    try:
        plain = cipher.decrypt(nonce, ciphertext, key_id)
    except InvalidTag:
        raise IntegrityFailure("A stored payload failed its authenticity check.") from None
    return zlib.decompress(plain) if flags & _FLAG_COMPRESSED else plain


def bytes_sealer_for(*, tenant_id: object, user_id: str) -> Callable[[bytes], bytes]:
    """Like `encoder_for`, for bytes a client serialised itself: encrypted with the person's key when possible."""
    key = _keyring.key_for(tenant_id, user_id) if _keyring is not None else None

    def seal(data: bytes) -> bytes:
        if key is None:
            return OPAQUE_BYTES + data
        body, flags = data, 0
        if len(data) >= COMPRESS_FROM_BYTES:
            packed = zlib.compress(data, 6)
            if len(packed) < len(data):  # already-compact serialisations may not shrink
                body, flags = packed, _FLAG_COMPRESSED
        key_id, cipher = key
        nonce = os.urandom(_NONCE_BYTES)
        return ENCRYPTED + bytes([flags]) + key_id + nonce + cipher.encrypt(nonce, body, key_id)

    return seal


def open_bytes(blob: bytes | memoryview) -> bytes:
    """The bytes `bytes_sealer_for` sealed. Erased when the person's key was destroyed, IntegrityFailure when
    the bytes were not written by it (or were tampered with)."""
    data = bytes(blob)
    tag, body = data[:1], data[1:]
    if tag == OPAQUE_BYTES:
        return body
    if tag == ENCRYPTED:
        try:
            return _decrypt(body)
        except zlib.error as exc:
            raise IntegrityFailure("A stored value cannot be read back.", details={"reason": str(exc)[:200]}) from None
    raise IntegrityFailure("A stored value has an unknown encoding.", details={"tag": tag.hex()})


def is_encrypted(blob: bytes | memoryview | None) -> bool:
    return blob is not None and bytes(blob[:1]) == ENCRYPTED
