"""Serializer base that refuses unknown fields, so a typo in a request is a 400 rather than silently ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers


def api_timestamp(value: datetime) -> str:
    """An aware datetime as DRF's DateTimeField renders it under TIME_ZONE = "UTC" (for hand-built bodies)."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def not_only_whitespace(value: str) -> None:
    """For ids taken exactly as given (a person's id keeps its spaces, so that erasing ' alice ' finds what was
    stored for ' alice '): one made of spaces alone names nobody."""
    if value and not value.strip():
        raise serializers.ValidationError("This id is only whitespace.")


class StrictSerializer(serializers.Serializer[Any]):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)
