"""LangGraph checkpoints as people read them: channel values and writes decoded from their typed blobs.

The service stores what LangGraph's serializer produced without needing to understand it; for the dashboard
it decodes the two encodings LangGraph writes (JSON and msgpack). msgpack extension types (LangGraph's way of
encoding Python objects such as messages, dataclasses and Pydantic models) become `{"__type__": "module.Name",
...their fields}`; bytes and values of any other encoding are described by type and size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

from langgraph_app.models import ThreadCheckpoint
from langgraph_app.selectors import TupleView, list_tuples
from memory_admin.codec import open_bytes
from memory_admin.errors import Erased, IntegrityFailure
from sessions_app.models import AgentSession

# LangGraph's msgpack extension codes (langgraph.checkpoint.serde.jsonplus).
_CONSTRUCTOR_SINGLE_ARG, _CONSTRUCTOR_POS_ARGS, _CONSTRUCTOR_KW_ARGS, _METHOD_SINGLE_ARG = 0, 1, 2, 3
_PYDANTIC_V1, _PYDANTIC_V2, _NUMPY_ARRAY, _DELTA_SNAPSHOT = 4, 5, 6, 7


def _key(value: Any) -> Any:
    """A map key as msgpack read it, made hashable: an array is a tuple again (LangGraph writes tuple keys as
    arrays), anything else unhashable (a map, a decoded extension) is its text."""
    if isinstance(value, list):
        return tuple(_key(item) for item in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _map(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    return {_key(key): value for key, value in pairs}


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, strict_map_key=False, object_pairs_hook=_map)


def _ext_hook(code: int, data: bytes) -> Any:
    try:
        parts = _unpack(data)
    except Exception:  # one odd value is described, not allowed to break the whole blob
        return {"__type__": f"ext {code}", "bytes": len(data)}
    if code == _DELTA_SNAPSHOT:
        return {"__type__": "DeltaSnapshot", "value": parts}
    if not isinstance(parts, (list, tuple)) or len(parts) < 3:
        return {"__type__": f"ext {code}", "value": parts}
    type_name = f"{parts[0]}.{parts[1]}"
    argument = parts[2]
    if code == _NUMPY_ARRAY:
        return {"__type__": "numpy.ndarray", "dtype": str(parts[0]), "shape": parts[1]}
    if code in (_CONSTRUCTOR_KW_ARGS, _PYDANTIC_V1, _PYDANTIC_V2) and isinstance(argument, dict):
        return {"__type__": type_name, **{str(key): value for key, value in argument.items()}}
    if code == _CONSTRUCTOR_POS_ARGS:
        return {"__type__": type_name, "args": argument}
    return {"__type__": type_name, "value": argument}


def decode_blob(type_: str, blob: bytes | memoryview | None) -> Any:
    """A stored (sealed) value as JSON-like data for display. Never raises on odd input: what cannot be opened
    or decoded is a placeholder string (only a storage layer's outage gets through)."""
    if type_ == "null":
        return None
    try:
        data = open_bytes(blob) if blob is not None else b""
    except (Erased, IntegrityFailure) as exc:
        return f"<unreadable: {exc.message}>"
    except (ValueError, IndexError):  # sealed bytes cut short
        return "<unreadable: malformed stored value>"
    try:
        if type_ == "json":
            return json.loads(data)
        if type_ == "msgpack":
            return _unpack(data)
    except Exception:  # a value shown to people must not break the page or the export
        return f"<undecodable {type_}, {len(data)} bytes>"
    return f"<{type_}, {len(data)} bytes>"


# Levels of a value shown; a container deeper is a placeholder. msgpack decodes values a thousand levels deep,
# and what shows them (the diff page, a person's export) writes them as JSON recursing once a level, under
# Python's limit of 1,000 frames.
MAX_DEPTH = 500


def _jsonable(value: Any) -> Any:
    """`value` as JSON data: map keys as text, tuples as lists, bytes and other objects described, containers
    below MAX_DEPTH levels a placeholder. Containers are copied, `value` is left as it is; no recursion."""
    root = [value]
    stack: list[tuple[Any, Any, int]] = [(root, 0, 0)]
    while stack:
        container, key, depth = stack.pop()
        item = container[key]
        if isinstance(item, (dict, list, tuple)) and depth >= MAX_DEPTH:
            container[key] = f"<nested deeper than {MAX_DEPTH} levels>"
        elif isinstance(item, dict):
            container[key] = mapping = {str(child): child_value for child, child_value in item.items()}
            stack.extend((mapping, child, depth + 1) for child in mapping)
        elif isinstance(item, (list, tuple)):
            container[key] = items = list(item)
            stack.extend((items, index, depth + 1) for index in range(len(items)))
        elif isinstance(item, bytes):
            container[key] = f"<{len(item)} bytes>"
        elif not (item is None or isinstance(item, (str, int, float, bool))):
            container[key] = str(item)
    return root[0]


def readable_value(type_: str, blob: bytes | memoryview | None) -> Any:
    """A stored value as JSON data, as a readable checkpoint holds its values (decoded, then `_jsonable`)."""
    return _jsonable(decode_blob(type_, blob))


@dataclass
class ReadableCheckpoint:
    row: ThreadCheckpoint
    # What the diff compares: channel values, metadata and the writes pending on top of the checkpoint.
    state: dict[str, Any]


def readable(view: TupleView) -> ReadableCheckpoint:
    channels = {blob.channel: decode_blob(blob.type, blob.blob) for blob in view.blobs if blob.type != "empty"}
    writes = [
        {"task_id": write.task_id, "channel": write.channel, "value": decode_blob(write.type, write.blob)}
        for write in view.writes
    ]
    state = {"channel_values": channels, "metadata": view.row.metadata, "pending_writes": writes}
    return ReadableCheckpoint(row=view.row, state=_jsonable(state))


def recent_checkpoints(session: AgentSession, *, limit: int = 50) -> list[ThreadCheckpoint]:
    """The session's newest LangGraph checkpoints (every namespace), without their blobs."""
    return list(ThreadCheckpoint.objects.filter(session=session).order_by("-checkpoint_id", "checkpoint_ns")[:limit])


def readable_checkpoint(
    session: AgentSession, *, checkpoint_id: str, checkpoint_ns: str = ""
) -> ReadableCheckpoint | None:
    views = list_tuples(
        tenant=session.tenant,
        thread_id=session.session_id,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=checkpoint_id,
        limit=1,
    )
    return readable(views[0]) if views else None
