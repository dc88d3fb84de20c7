"""Request and response bodies of the erasure API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from compliance_app.models import LegalBasis
from memory_admin.api.serializers import StrictSerializer


def _exact_user_id() -> serializers.CharField:
    # Kept exactly as given, spaces too: the other APIs store the id as the agent sent it, so " alice " is
    # another person than "alice", and trimming it here would erase or export the wrong one.
    return serializers.CharField(
        max_length=256, trim_whitespace=False, help_text="The tenant's identifier of the person, exactly as stored."
    )


def _not_blank(value: str) -> str:
    if not value.strip():
        raise serializers.ValidationError("A user id is not blank.")
    return value


class ErasureIn(StrictSerializer):
    user_id = _exact_user_id()
    identifiers = serializers.ListField(
        child=serializers.CharField(max_length=256),
        required=False,
        default=list,
        max_length=20,
        help_text="Further identifiers the verification must not find (an email, a phone number).",
    )
    legal_basis = serializers.ChoiceField(choices=LegalBasis.choices)
    note = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)

    def validate_user_id(self, value: str) -> str:
        return _not_blank(value)


class ErasureOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    status = serializers.CharField()
    legal_basis = serializers.CharField()
    subject = serializers.CharField(help_text="Keyed hash standing for the person.")
    filed_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    erased_at = serializers.DateTimeField(allow_null=True)
    purged_at = serializers.DateTimeField(allow_null=True)
    verified_at = serializers.DateTimeField(allow_null=True)
    rejection_reason = serializers.CharField()
    erased_per_layer = serializers.JSONField(source="preview")
    purged_per_layer = serializers.JSONField(source="purged")
    verification = serializers.JSONField()


class ExportIn(StrictSerializer):
    user_id = _exact_user_id()
    legal_basis = serializers.ChoiceField(choices=LegalBasis.choices, required=False, default="gdpr_art_15")

    def validate_user_id(self, value: str) -> str:
        return _not_blank(value)


class ExportOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    status = serializers.CharField(help_text="pending, running, ready, failed or expired.")
    legal_basis = serializers.CharField()
    subject = serializers.CharField(help_text="Keyed hash standing for the person.")
    filed_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    progress = serializers.JSONField(help_text="Rows written per layer so far, and the layer being written.")
    manifest = serializers.JSONField(help_text="Files of the archive with rows, bytes and SHA-256 each.")
    archive_bytes = serializers.IntegerField()
    archive_sha256 = serializers.CharField()
    error = serializers.CharField()
