"""How events fold into a session's state, and how each built-in event type's payload is validated.

The state of a session at version V is `fold(events 1..V)`; a snapshot stores the fold up to its version so
a rebuild replays only what follows. Folding is pure: same events, same state, whatever the process.

State shape (schema 1):

    {"messages": [...],            # MESSAGE_ADDED appends, CONTEXT_REPLACED replaces
     "current_node": "plan",       # NODE_TRANSITION
     "node_history": ["start", …], # the last NODE_HISTORY_LIMIT nodes visited
     "tool_results": {"search": …},# TOOL_EXECUTED: the latest result per tool
     "tool_state": {"search": …},  # TOOL_STATE_SET / TOOL_STATE_CLEARED
     "data": {…},                  # STATE_PATCHED applies its RFC 6902 patch here
     "custom_events": {"MY_TYPE": 3}}  # custom types are stored and counted, not interpreted
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import jsonpatch
from rest_framework.exceptions import ParseError

from checkpoints_app.patching import CopyBudget, PatchError, apply_patch, check_patched
from memory_admin.api.parsers import MAX_JSON_DEPTH
from memory_admin.errors import ValidationFailed
from sessions_app.models import EventType

STATE_SCHEMA_VERSION = 1
CUSTOM_EVENT_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")
# What a tool's state is addressed by (/sessions/<id>/tools/<name>). Patterns here are used with fullmatch:
# `$` alone also matches before a final newline.
TOOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MESSAGE_ROLES = frozenset({"system", "user", "assistant", "tool"})
NODE_HISTORY_LIMIT = 50
BUILT_IN = frozenset(EventType.values)


def empty_state() -> dict[str, Any]:
    return {
        "messages": [],
        "current_node": None,
        "node_history": [],
        "tool_results": {},
        "tool_state": {},
        "data": {},
        "custom_events": {},
    }


def upgrade_state(state: dict[str, Any], schema_version: int) -> dict[str, Any]:
    """Bring a stored snapshot written by an older schema up to STATE_SCHEMA_VERSION."""
    if schema_version > STATE_SCHEMA_VERSION:
        raise ValidationFailed("A snapshot was written by a newer version of the service.")
    return {**empty_state(), **state}


def _require_text(payload: dict[str, Any], field: str, *, max_length: int = 128) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise ValidationFailed(
            f"payload.{field} must be a non-empty string of at most {max_length} characters.",
            details={"field": f"payload.{field}"},
        )
    return value


def validate_message(message: Any) -> dict[str, Any]:
    """A chat message: {"role": system|user|assistant|tool, "content": ..., optional name, metadata…}."""
    if not isinstance(message, dict):
        raise ValidationFailed("A message must be a JSON object.", details={"field": "message"})
    role = message.get("role")
    if not isinstance(role, str) or role not in MESSAGE_ROLES:
        raise ValidationFailed(
            f"message.role must be one of {', '.join(sorted(MESSAGE_ROLES))}.", details={"field": "message.role"}
        )
    if "content" not in message or message["content"] is None:
        raise ValidationFailed("message.content is required.", details={"field": "message.content"})
    return message


_PATCH_OPS = {
    "add": ("value",),
    "replace": ("value",),
    "test": ("value",),
    "remove": (),
    "move": ("from",),
    "copy": ("from",),
}


def _is_pointer(value: Any) -> bool:
    return isinstance(value, str) and (value == "" or value.startswith("/"))


def validate_patch(patch: Any) -> list[dict[str, Any]]:
    """An RFC 6902 operation list: each op names a known operation, a JSON pointer and what it needs."""
    if not isinstance(patch, list) or not patch:
        raise ValidationFailed("payload.patch must be a non-empty RFC 6902 operation list.")
    for index, operation in enumerate(patch):
        where = {"field": f"payload.patch[{index}]"}
        if (
            not isinstance(operation, dict)
            or not isinstance(operation.get("op"), str)
            or operation["op"] not in _PATCH_OPS
        ):
            raise ValidationFailed(f"Operation {index} needs an op: one of {', '.join(_PATCH_OPS)}.", details=where)
        if not _is_pointer(operation.get("path")):
            raise ValidationFailed(f"Operation {index} needs a JSON pointer path such as /a/b.", details=where)
        for member in _PATCH_OPS[operation["op"]]:
            if member not in operation or (member == "from" and not _is_pointer(operation["from"])):
                raise ValidationFailed(f"Operation {index} ({operation['op']}) needs '{member}'.", details=where)
    return patch


def validate_event(event_type: str, payload: Any) -> Any:
    """Check a payload against its built-in type's contract; custom types only need a well-formed name."""
    if event_type not in BUILT_IN:
        if not CUSTOM_EVENT_TYPE.fullmatch(event_type):
            raise ValidationFailed(
                "A custom event type is a letter then up to 63 letters, digits or _ . : -",
                details={"field": "type"},
            )
        return payload
    if not isinstance(payload, dict):
        raise ValidationFailed(f"A {event_type} payload must be a JSON object.", details={"field": "payload"})
    if event_type == EventType.MESSAGE_ADDED:
        validate_message(payload)
    elif event_type == EventType.CONTEXT_REPLACED:
        messages = payload.get("messages")
        if not isinstance(messages, list):
            raise ValidationFailed("payload.messages must be a list of messages.")
        for message in messages:
            validate_message(message)
    elif event_type == EventType.TOOL_EXECUTED:
        _require_text(payload, "tool")
        if "result" not in payload:
            raise ValidationFailed("payload.result is required (null is allowed).", details={"field": "payload.result"})
    elif event_type in (EventType.TOOL_STATE_SET, EventType.TOOL_STATE_CLEARED):
        if not TOOL_NAME.fullmatch(_require_text(payload, "tool")):
            raise ValidationFailed(
                "payload.tool must be a tool name: a letter or digit, then up to 127 letters, digits or _ . : -",
                details={"field": "payload.tool"},
            )
    elif event_type == EventType.NODE_TRANSITION:
        _require_text(payload, "node")
    elif event_type == EventType.STATE_PATCHED:
        validate_patch(payload.get("patch"))
    return payload


def apply_event(
    state: dict[str, Any], event_type: str, payload: Any, *, copy_budget: CopyBudget | None = None
) -> dict[str, Any]:
    """Fold one event into `state` (mutated and returned). Raises ValidationFailed if a patch cannot apply.

    A stored event replays as it was accepted. An event being appended (`copy_budget` given) is held to what an
    append may do: its patch's `copy` operations may copy at most what is left of `copy_budget`, which the
    append's patches share, and it may not leave
    `data` nested deeper than MAX_JSON_DEPTH levels. (Limits added later must not make stored events fail.)
    """
    if event_type == EventType.MESSAGE_ADDED:
        state["messages"].append(payload)
    elif event_type == EventType.CONTEXT_REPLACED:
        state["messages"] = list(payload["messages"])
    elif event_type == EventType.TOOL_EXECUTED:
        state["tool_results"][payload["tool"]] = payload["result"]
    elif event_type == EventType.TOOL_STATE_SET:
        state["tool_state"][payload["tool"]] = payload.get("state")
    elif event_type == EventType.TOOL_STATE_CLEARED:
        state["tool_state"].pop(payload["tool"], None)
    elif event_type == EventType.NODE_TRANSITION:
        state["current_node"] = payload["node"]
        state["node_history"] = [*state["node_history"], payload["node"]][-NODE_HISTORY_LIMIT:]
    elif event_type == EventType.STATE_PATCHED:
        if copy_budget is None:
            try:
                state["data"] = jsonpatch.apply_patch(state["data"], payload["patch"], in_place=True)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, RecursionError) as exc:
                # Not jsonpatch's message: it quotes the whole document it failed on (the person's data).
                raise ValidationFailed(
                    f"The patch does not apply to the session's current state ({type(exc).__name__}).",
                    details={"field": "payload.patch"},
                ) from None
        else:
            state["data"] = _patched(state["data"], payload["patch"], copy_budget=copy_budget)
    else:
        state["custom_events"][event_type] = state["custom_events"].get(event_type, 0) + 1
    return state


def _patched(data: dict[str, Any], patch: list[dict[str, Any]], *, copy_budget: CopyBudget) -> dict[str, Any]:
    """`data` (changed in place) with a new patch applied, as checkpoints apply theirs: `copy` cannot blow a
    small patch up into gigabytes, the patch's values are copied (jsonpatch would insert them by reference, and
    a later operation changing one would change the payload that gets stored), and nesting stays bounded."""
    try:
        result = apply_patch(data, patch, max_bytes=copy_budget)
        check_patched(result, patch)
    except PatchError as exc:
        raise ValidationFailed(
            f"The patch cannot be applied to the session's state: {exc}.", details={"field": "payload.patch"}
        ) from None
    except ParseError:  # (its strings came through the request parser, which holds them to the same rules)
        raise ValidationFailed(
            f"The patch would nest the state's data deeper than {MAX_JSON_DEPTH} levels.",
            details={"field": "payload.patch", "max_depth": MAX_JSON_DEPTH},
        ) from None
    return result


def fold(state: dict[str, Any], events: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    for event_type, payload in events:
        apply_event(state, event_type, payload)
    return state
