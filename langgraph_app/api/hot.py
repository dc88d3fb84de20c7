"""The LangGraph API's hot routes (see memory_admin.api.hot): the checkpointer's one request per graph step,
the read every `invoke` on a thread starts with (`get_tuple`: the thread's latest checkpoint), and the
store's batches (a node's `store.get`, `search` or `put`).

`parse_saves` is the very parser the view uses; a body it refuses is handed to Django, which words the
refusal. A listing's query is read as the view reads it, and whatever the view would refuse (or the lane
does not read, such as a metadata filter) is handed over too. The handlers call the same services and
selectors as the views.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from langgraph_app import selectors, services, store
from langgraph_app.api.serializers import QUERY_MAX_LENGTH, parse_saves, store_ops, tuple_page
from langgraph_app.services import CheckpointSave, WritesSave
from memory_admin.api.hot.lane import Fallback, HotRequest, HotResponse, HotRoute, json_response

_THREAD = "/api/v1/langgraph/threads/{session_id}"


def parse(body: Any) -> tuple[list[CheckpointSave | WritesSave], str]:
    try:
        return parse_saves(body)
    except serializers.ValidationError:
        raise Fallback from None


def save(request: HotRequest, arguments: tuple[list[CheckpointSave | WritesSave], str]) -> HotResponse:
    saves, user_id = arguments
    checkpoints, writes = services.save_batch(
        tenant=request.tenant, thread_id=request.kwargs["session_id"], saves=saves, user_id=user_id
    )
    return json_response({"checkpoints": checkpoints, "writes": writes})


def parse_listing(query: dict[str, str]) -> dict[str, Any]:
    """list_tuples' keyword arguments (but the thread) from a query the view would accept as it is."""
    if any(len(query.get(name, "")) > longest for name, longest in QUERY_MAX_LENGTH.items()):
        raise Fallback
    limit = query.get("limit")
    # The view reads the limit with int(): other spellings than plain digits ("+5", " 5", "5_0") are its own.
    if limit is not None and not (
        len(limit) <= 3 and limit.isascii() and limit.isdigit() and 1 <= int(limit) <= selectors.MAX_LIMIT
    ):
        raise Fallback
    return {
        "checkpoint_ns": query.get("checkpoint_ns"),
        "checkpoint_id": query.get("checkpoint_id"),
        "before": query.get("before"),
        "limit": int(limit) if limit is not None else selectors.MAX_LIMIT,
    }


def listing(request: HotRequest, arguments: dict[str, Any]) -> HotResponse:
    views = selectors.list_tuples(tenant=request.tenant, thread_id=request.kwargs["session_id"], **arguments)
    return json_response(tuple_page(views, arguments["limit"]))


def parse_store_batch(body: Any) -> list[store.Op]:
    """StoreBatchIn's body, exactly `{"ops": [...]}`, checked by the field the view's serializer uses."""
    if not isinstance(body, dict) or body.keys() != {"ops"}:
        raise Fallback
    try:
        return store_ops(body["ops"])
    except serializers.ValidationError:
        raise Fallback from None


def store_batch(request: HotRequest, ops: list[store.Op]) -> HotResponse:
    return json_response({"results": store.run_batch(tenant=request.tenant, ops=ops)})


ROUTES = [
    HotRoute("POST", f"{_THREAD}/saves", "api:langgraph-saves", parse, save),
    HotRoute(
        "GET",
        f"{_THREAD}/checkpoints",
        "api:langgraph-checkpoints",
        parse_listing,
        listing,
        has_body=False,
        query=frozenset({"checkpoint_ns", "checkpoint_id", "before", "limit"}),
    ),
    HotRoute("POST", "/api/v1/langgraph/store/batch", "api:langgraph-store-batch", parse_store_batch, store_batch),
]
