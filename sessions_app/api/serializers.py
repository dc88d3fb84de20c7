"""Request and response bodies of the sessions API."""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from rest_framework import serializers

from memory_admin.api.serializers import StrictSerializer, api_timestamp, not_only_whitespace
from memory_admin.codec import response_json
from sessions_app.models import Event, EventType, Operation, SessionStatus
from sessions_app.selectors import ContextView
from sessions_app.services import AppendResult
from sessions_app.state import CUSTOM_EVENT_TYPE, TOOL_NAME

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"  # the same as selectors.SESSION_ID
TOOL_NAME_PATTERN = TOOL_NAME.pattern


class JSONObjectField(serializers.JSONField):
    """A JSON object (not a list or scalar)."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


# --- sessions -------------------------------------------------------------------------------------------


class SessionCreateIn(StrictSerializer):
    id = serializers.RegexField(SESSION_ID_PATTERN, required=False, help_text="Your own id; generated when absent.")
    user_id = serializers.CharField(
        max_length=256,
        trim_whitespace=False,
        validators=[not_only_whitespace],
        help_text="The tenant's identifier of the person served, exactly as given (spaces count).",
    )
    metadata = JSONObjectField(required=False, default=dict)


class SessionUpdateIn(StrictSerializer):
    status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)
    metadata = JSONObjectField(required=False, help_text="Merged into the metadata (RFC 7396: null removes a key).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Send status and/or metadata.")
        return attrs


class SessionOut(serializers.Serializer[Any]):
    id = serializers.CharField(source="session_id")
    user_id = serializers.CharField()
    status = serializers.ChoiceField(choices=SessionStatus.choices)
    metadata = serializers.JSONField()
    version = serializers.IntegerField(
        help_text="The ETag: bumped when the status or metadata changes. Appends move `head_version`, not this."
    )
    head_version = serializers.IntegerField(help_text="Version of the newest event (0: none yet).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    last_activity_at = serializers.DateTimeField()


# --- events ---------------------------------------------------------------------------------------------


def event_type(**kwargs: Any) -> serializers.RegexField:
    """An event's type: a built-in one, whose payload has a contract (sessions_app.state), or your own."""
    return serializers.RegexField(
        CUSTOM_EVENT_TYPE,
        max_length=64,
        error_messages={"invalid": "A custom event type is a letter then up to 63 letters, digits or _ . : -"},
        help_text=f"Built in: {', '.join(EventType.values)}; or your own, a letter then up to 63 letters, "
        "digits or _ . : -",
        **kwargs,
    )


class EventIn(StrictSerializer):
    type = event_type()
    payload = serializers.JSONField(allow_null=True)


class EventAppendIn(StrictSerializer):
    """One event (`type` + `payload`) or a batch (`events`), optionally conditional on `expected_version`."""

    type = event_type(required=False)
    payload = serializers.JSONField(required=False, allow_null=True)
    # A list of the events (not EventIn(many=True)) so that the schema states its bounds as the service has them.
    events = serializers.ListField(child=EventIn(), min_length=1, max_length=settings.EVENT_BATCH_MAX, required=False)
    expected_version = serializers.IntegerField(min_value=0, max_value=2**63 - 1, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        single = "type" in attrs or "payload" in attrs
        if single == ("events" in attrs):
            raise serializers.ValidationError("Send either `type` and `payload`, or `events`.")
        if single:
            if "type" not in attrs or "payload" not in attrs:
                raise serializers.ValidationError("A single event needs both `type` and `payload`.")
            attrs["events"] = [{"type": attrs.pop("type"), "payload": attrs.pop("payload")}]
        return attrs


class EventOut(serializers.Serializer[Any]):
    version = serializers.IntegerField()
    type = serializers.CharField()
    payload = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_payload(self, event: Event) -> Any:
        return self.context["decode"](event.payload)


class AppendedEventOut(serializers.Serializer[Any]):
    """An appended event as acknowledged: the payload the client sent is not echoed back."""

    version = serializers.IntegerField()
    type = serializers.CharField()
    created_at = serializers.DateTimeField()


class AppendOut(serializers.Serializer[Any]):
    head_version = serializers.IntegerField()
    events = AppendedEventOut(many=True)


def append_out(result: AppendResult) -> dict[str, Any]:
    """AppendOut's body, built by hand: the hottest response of the API (both lanes send it)."""
    events = [{"version": e.version, "type": e.type, "created_at": api_timestamp(e.created_at)} for e in result.events]
    return {"head_version": result.head_version, "events": events}


class StateOut(serializers.Serializer[Any]):
    version = serializers.IntegerField()
    state = serializers.JSONField()
    snapshot_version = serializers.IntegerField(help_text="The snapshot the rebuild started from (0: none).")
    replayed_events = serializers.IntegerField()


# --- hot context and tools ------------------------------------------------------------------------------


class MessagesAppendIn(StrictSerializer):
    messages = serializers.ListField(child=JSONObjectField(), min_length=1, max_length=500)
    expected_version = serializers.IntegerField(min_value=0, max_value=2**63 - 1, required=False)


class ContextReplaceIn(StrictSerializer):
    messages = serializers.ListField(child=JSONObjectField(), max_length=10_000)


class ContextOut(serializers.Serializer[Any]):
    messages = serializers.ListField(child=serializers.JSONField())
    version = serializers.IntegerField(help_text="The stream version the window reflects.")
    ttl_seconds = serializers.IntegerField(help_text="Seconds until the cached window expires without activity.")
    source = serializers.ChoiceField(  # type: ignore[assignment]  # a response field named like Field.source
        choices=["redis", "rebuilt", "postgres"],
        help_text="redis: from the cache; rebuilt: the cache was rebuilt from events; postgres: Redis is down.",
    )


def context_out(view: ContextView) -> dict[str, Any]:
    """ContextOut's body, built by hand for the same reason."""
    return {"messages": view.messages, "version": view.version, "ttl_seconds": view.ttl_seconds, "source": view.source}


def context_body(view: ContextView) -> bytes:
    """ContextOut's body as bytes; a window served from Redis goes out as the JSON texts Redis holds, unparsed."""
    if view.texts is None:
        return response_json(context_out(view))
    tail = orjson.dumps({"version": view.version, "ttl_seconds": view.ttl_seconds, "source": view.source})
    return b'{"messages":[' + b",".join(view.texts) + b"]," + tail[1:]


class ToolStateIn(StrictSerializer):
    state = serializers.JSONField(allow_null=True)


class ToolStateOut(serializers.Serializer[Any]):
    tool = serializers.CharField()
    state = serializers.JSONField()
    version = serializers.IntegerField()
    ttl_seconds = serializers.IntegerField()
    source = serializers.ChoiceField(  # type: ignore[assignment]  # a response field named like Field.source
        choices=["redis", "rebuilt", "postgres"],
        help_text="redis: from (or, for a write, stored in) the cache; rebuilt: read from events and cached again; "
        "postgres: read from events alone (Redis unreachable; always for the list), or for a write, held by its "
        "event only.",
    )


# --- operation journal ----------------------------------------------------------------------------------


class OperationIn(StrictSerializer):
    name = serializers.CharField(
        max_length=128, trim_whitespace=False, validators=[not_only_whitespace], help_text="Exactly as given."
    )
    key = serializers.CharField(
        max_length=255,
        trim_whitespace=False,
        validators=[not_only_whitespace],
        help_text="Your key for this intent, exactly as given; recording the same intent again (same name and "
        "params) returns the first record, another intent under this key is a 409.",
    )
    params = serializers.JSONField(required=False, default=dict, allow_null=True)


class OperationResultIn(StrictSerializer):
    result = serializers.JSONField(required=False, default=None, allow_null=True)


class OperationErrorIn(StrictSerializer):
    error = serializers.JSONField(allow_null=True)


class OperationOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    name = serializers.CharField()
    key = serializers.CharField()
    status = serializers.CharField()
    params = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def _decoded(self, blob: Any) -> Any:
        return None if blob is None else self.context["decode"](blob)

    def get_params(self, operation: Operation) -> Any:
        return self._decoded(operation.params)

    def get_result(self, operation: Operation) -> Any:
        return self._decoded(operation.result)

    def get_error(self, operation: Operation) -> Any:
        return self._decoded(operation.error)
