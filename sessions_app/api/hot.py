"""The sessions API's hot routes (see memory_admin.api.hot): message appends, event appends, context reads.

Each parser accepts exactly the bodies the DRF serializer would accept unchanged (MessagesAppendIn,
EventAppendIn) and hands anything else to Django, which words the refusal. The handlers call the same
selectors and services as the views and answer with the same bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from memory_admin.api.hot.lane import Fallback, HotRequest, HotResponse, HotRoute, json_response
from sessions_app import selectors, services
from sessions_app.api.serializers import append_out, context_body
from sessions_app.state import CUSTOM_EVENT_TYPE

_SESSION = "/api/v1/sessions/{session_id}"
MAX_MESSAGES = 500  # MessagesAppendIn.messages' max_length
MAX_VERSION = 2**63 - 1  # expected_version's max_value (a bigint)


def _expected_version(body: dict[str, Any]) -> int | None:
    value = body.get("expected_version")
    if value is None and "expected_version" not in body:
        return None
    if type(value) is not int or not 0 <= value <= MAX_VERSION:
        raise Fallback
    return value


def _plain_type(value: Any) -> str:
    # DRF's CharField would turn a number into text and trim spaces: such a type is not plain. One that is not a
    # well-formed type (EventIn.type's pattern) is the serializer's to refuse.
    if type(value) is not str or not CUSTOM_EVENT_TYPE.fullmatch(value):
        raise Fallback
    return value


# --- POST /sessions/<id>/context/messages ---------------------------------------------------------------


def parse_messages(body: Any) -> tuple[list[dict[str, Any]], int | None]:
    if type(body) is not dict or not body.keys() <= {"messages", "expected_version"}:
        raise Fallback
    messages = body.get("messages")
    if type(messages) is not list or not 1 <= len(messages) <= MAX_MESSAGES:
        raise Fallback
    if any(type(message) is not dict for message in messages):
        raise Fallback
    return messages, _expected_version(body)


def append_messages(request: HotRequest, arguments: tuple[list[dict[str, Any]], int | None]) -> HotResponse:
    messages, expected_version = arguments
    return _appended(request, services.append_messages, messages=messages, expected_version=expected_version)


# --- POST /sessions/<id>/events -------------------------------------------------------------------------


def parse_events(body: Any) -> tuple[list[services.NewEvent], int | None]:
    if type(body) is not dict or not body.keys() <= {"type", "payload", "events", "expected_version"}:
        raise Fallback
    if "events" in body:
        items = body["events"]
        if "type" in body or "payload" in body or type(items) is not list:
            raise Fallback
        if not 1 <= len(items) <= settings.EVENT_BATCH_MAX:  # EventAppendIn.events' bounds
            raise Fallback
        events = []
        for item in items:
            if type(item) is not dict or item.keys() != {"type", "payload"}:
                raise Fallback
            events.append(services.NewEvent(_plain_type(item["type"]), item["payload"]))
    else:
        if body.keys() - {"expected_version"} != {"type", "payload"}:
            raise Fallback
        events = [services.NewEvent(_plain_type(body["type"]), body["payload"])]
    return events, _expected_version(body)


def append_events(request: HotRequest, arguments: tuple[list[services.NewEvent], int | None]) -> HotResponse:
    events, expected_version = arguments
    return _appended(request, services.append_events, events=events, expected_version=expected_version)


def _appended(request: HotRequest, append: Callable[..., services.AppendResult], **batch: Any) -> HotResponse:
    """Run `append` (a sessions service) on the request's session with the batch; answer as the views do."""
    session = selectors.known_session(tenant=request.tenant, session_id=request.kwargs["session_id"])
    result = append(session=session, idempotency_key=request.stored_idempotency_key(), **batch)
    return json_response(append_out(result), 201)


# --- GET /sessions/<id>/context -------------------------------------------------------------------------


def no_arguments(body: Any) -> None:
    return None


def read_context(request: HotRequest, arguments: None) -> HotResponse:
    session = selectors.get_session(tenant=request.tenant, session_id=request.kwargs["session_id"])
    return HotResponse(200, context_body(selectors.read_context(session=session)))


ROUTES = [
    HotRoute("POST", f"{_SESSION}/context/messages", "api:session-context-messages", parse_messages, append_messages),
    HotRoute("POST", f"{_SESSION}/events", "api:session-events", parse_events, append_events),
    HotRoute("GET", f"{_SESSION}/context", "api:session-context", no_arguments, read_context, has_body=False),
]
