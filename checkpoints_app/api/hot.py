"""The checkpoints API's hot routes (see memory_admin.api.hot): a save after every agent step, the latest read.

The parser accepts exactly the bodies CheckpointIn would accept unchanged and hands anything else to Django,
which words the refusal; the handlers call the same selectors and services as the views.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from checkpoints_app import selectors, services
from checkpoints_app.api.serializers import MAX_SEQUENCE, checkpoint_out, checkpoint_with_state_body
from checkpoints_app.chain import SessionNotFound
from checkpoints_app.patching import PatchError, check_ops
from memory_admin.api.hot.lane import Fallback, HotRequest, HotResponse, HotRoute, json_response
from sessions_app import identity
from sessions_app.selectors import known_session

_BASE = "/api/v1/sessions/{session_id}/checkpoints"
_FIELDS = frozenset({"node_id", "state", "patch", "parent_id", "sequence", "checksum", "metadata"})
_CHECKSUM = re.compile(r"[0-9a-fA-F]{64}")
MAX_NODE_ID = 128  # CheckpointIn.node_id's max_length


def _uuid(value: Any) -> uuid.UUID:
    # DRF's UUIDField reads other spellings too (no dashes, braces, a urn: prefix): those are not plain.
    if type(value) is not str or len(value) != 36:
        raise Fallback
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise Fallback from None
    if str(parsed) != value.lower():
        raise Fallback
    return parsed


def parse_save(body: Any) -> dict[str, Any]:
    """services.save_checkpoint's keyword arguments (but the session), from a body CheckpointIn accepts as is."""
    if type(body) is not dict or not body.keys() <= _FIELDS:
        raise Fallback
    node_id = body.get("node_id")
    if type(node_id) is not str or not node_id or node_id != node_id.strip() or len(node_id) > MAX_NODE_ID:
        raise Fallback
    state, patch = body.get("state"), body.get("patch")
    if ("state" in body) == ("patch" in body) or (state is None and patch is None):
        raise Fallback
    if state is not None and type(state) is not dict:
        raise Fallback
    if patch is not None:
        if "parent_id" not in body:
            raise Fallback
        try:
            patch = check_ops(patch)
        except PatchError:
            raise Fallback from None
    sequence = body.get("sequence")
    if sequence is not None and (type(sequence) is not int or not 1 <= sequence <= MAX_SEQUENCE):
        raise Fallback
    checksum = body.get("checksum")
    if checksum is not None and (type(checksum) is not str or not _CHECKSUM.fullmatch(checksum)):
        raise Fallback
    metadata = body.get("metadata", {})
    if type(metadata) is not dict or any(body.get(name, True) is None for name in ("parent_id", "sequence")):
        raise Fallback
    return {
        "node_id": node_id,
        "state": state,
        "patch": patch,
        "parent_id": _uuid(body["parent_id"]) if "parent_id" in body else None,
        "sequence": sequence,
        "checksum": checksum.lower() if checksum is not None else None,
        "metadata": metadata,
    }


def save(request: HotRequest, arguments: dict[str, Any]) -> HotResponse:
    session = known_session(tenant=request.tenant, session_id=request.kwargs["session_id"])
    outcome = services.save_checkpoint(session=session, **arguments)
    location = f"{request.path}/{outcome.checkpoint.pk}"
    return json_response(checkpoint_out(outcome.checkpoint), 201 if outcome.created else 200, [("Location", location)])


def no_arguments(body: Any) -> None:
    return None


def latest(request: HotRequest, arguments: None) -> HotResponse:
    tenant, session_id = request.tenant, request.kwargs["session_id"]
    try:
        rebuilt = selectors.get_latest_checkpoint(session=known_session(tenant=tenant, session_id=session_id))
    except SessionNotFound:
        # Remembered, but gone (erased, or the id now names another session): look it up (404 when gone).
        identity.forget(tenant.pk, session_id)
        rebuilt = selectors.get_latest_checkpoint(session=known_session(tenant=tenant, session_id=session_id))
    return HotResponse(200, checkpoint_with_state_body(rebuilt))


ROUTES = [
    HotRoute("POST", _BASE, "api:checkpoint-list", parse_save, save),
    HotRoute("GET", f"{_BASE}/latest", "api:checkpoint-latest", no_arguments, latest, has_body=False),
]
