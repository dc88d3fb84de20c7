"""Request and response bodies of the checkpoints API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from checkpoints_app.chain import Rebuilt
from checkpoints_app.models import Checkpoint, CheckpointKind
from checkpoints_app.patching import PatchError, check_ops
from memory_admin.api.serializers import StrictSerializer, api_timestamp
from memory_admin.codec import response_json

MAX_SEQUENCE = 2**63 - 1


class JSONObjectField(serializers.JSONField):
    """A JSON object (not a list or scalar)."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


class JSONPatchField(serializers.JSONField):
    """An RFC 6902 JSON Patch: a list of operations."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        try:
            return check_ops(value)
        except PatchError as exc:
            raise serializers.ValidationError(str(exc)) from None


class CheckpointIn(StrictSerializer):
    node_id = serializers.CharField(max_length=128, help_text="The graph node that just ran.")
    state = JSONObjectField(required=False, help_text="The full state. Send this or `patch`.")
    patch = JSONPatchField(
        required=False, help_text="RFC 6902 operations that turn the parent's state into this one (needs parent_id)."
    )
    parent_id = serializers.UUIDField(
        required=False,
        help_text="The checkpoint this one follows; default the latest. An older one starts a branch (a fork).",
    )
    sequence = serializers.IntegerField(
        min_value=1,
        max_value=MAX_SEQUENCE,
        required=False,
        help_text="The sequence you expect this save to get: a retry of a stored save returns it (200); "
        "the sequence taken by other content, or not the next one, is a 409.",
    )
    checksum = serializers.RegexField(
        r"^[0-9a-fA-F]{64}$",
        required=False,
        help_text="The chained SHA-256 you computed; a 422 when the server computes another.",
    )
    metadata = JSONObjectField(required=False, default=dict)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("state" in attrs) == ("patch" in attrs):
            raise serializers.ValidationError("Send exactly one of `state` and `patch`.")
        if "patch" in attrs and "parent_id" not in attrs:
            raise serializers.ValidationError({"parent_id": ["A patch needs the parent it applies to."]})
        if "checksum" in attrs:
            attrs["checksum"] = attrs["checksum"].lower()
        return attrs


class CheckpointOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    sequence = serializers.IntegerField()
    parent_id = serializers.UUIDField(allow_null=True)
    parent_sequence = serializers.SerializerMethodField()
    forked = serializers.SerializerMethodField()
    node_id = serializers.CharField()
    kind = serializers.ChoiceField(choices=CheckpointKind.choices, help_text="How it is stored: full or delta.")
    schema_version = serializers.IntegerField()
    checksum = serializers.CharField(help_text="SHA-256 chained to the parent's checksum.")
    event_version = serializers.IntegerField(help_text="The session's newest event version when it was saved.")
    metadata = serializers.JSONField()
    created_at = serializers.DateTimeField()

    def get_parent_sequence(self, checkpoint: Checkpoint) -> int | None:
        if checkpoint.parent_id is None:
            return None
        annotated = getattr(checkpoint, "parent_sequence", None)
        if annotated is not None:
            return int(annotated)
        return checkpoint.parent.sequence if checkpoint.parent else None

    def get_forked(self, checkpoint: Checkpoint) -> bool:
        """True when the parent is not the previous sequence: this checkpoint starts or continues a branch."""
        parent_sequence = self.get_parent_sequence(checkpoint)
        return parent_sequence is not None and parent_sequence != checkpoint.sequence - 1


class CheckpointWithStateOut(CheckpointOut):
    state = serializers.JSONField(help_text="The full state, rebuilt and verified against the chain.")


def checkpoint_out(checkpoint: Checkpoint) -> dict[str, Any]:
    """CheckpointOut's body, built by hand: the saves and latest reads of every agent step go through here."""
    parent_sequence = getattr(checkpoint, "parent_sequence", None) if checkpoint.parent_id is not None else None
    if checkpoint.parent_id is not None and parent_sequence is None:
        parent_sequence = checkpoint.parent.sequence if checkpoint.parent else None
    return {
        "id": str(checkpoint.pk),
        "sequence": checkpoint.sequence,
        "parent_id": str(checkpoint.parent_id) if checkpoint.parent_id is not None else None,
        "parent_sequence": parent_sequence,
        "forked": parent_sequence is not None and parent_sequence != checkpoint.sequence - 1,
        "node_id": checkpoint.node_id,
        "kind": checkpoint.kind,
        "schema_version": checkpoint.schema_version,
        "checksum": checkpoint.checksum,
        "event_version": checkpoint.event_version,
        "metadata": checkpoint.metadata,
        "created_at": api_timestamp(checkpoint.created_at),
    }


def checkpoint_with_state_body(rebuilt: Rebuilt) -> bytes:
    """CheckpointWithStateOut's body. The state goes out as the canonical JSON its checksum was verified
    over: no second serialisation."""
    return response_json(checkpoint_out(rebuilt.checkpoint))[:-1] + b',"state":' + rebuilt.state_json + b"}"


class CheckpointRefOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    sequence = serializers.IntegerField()
    event_version = serializers.IntegerField()


class ChangedPathsOut(serializers.Serializer[Any]):
    added = serializers.ListField(child=serializers.CharField(), help_text="JSON Pointers only in `to`.")
    removed = serializers.ListField(child=serializers.CharField(), help_text="JSON Pointers only in `from`.")
    changed = serializers.ListField(child=serializers.CharField(), help_text="JSON Pointers in both, different.")
    truncated = serializers.BooleanField()


class DiffEventOut(serializers.Serializer[Any]):
    version = serializers.IntegerField()
    type = serializers.CharField()
    created_at = serializers.DateTimeField()


class DiffOut(serializers.Serializer[Any]):
    from_checkpoint = CheckpointRefOut(source="source", help_text="The `from` checkpoint.")
    to_checkpoint = CheckpointRefOut(source="target", help_text="The `to` checkpoint.")
    patch = serializers.ListField(child=serializers.DictField(), help_text="RFC 6902 from `from` to `to`.")
    summary = ChangedPathsOut()
    events = DiffEventOut(many=True, help_text="Events recorded between the two checkpoints, oldest first.")
    events_truncated = serializers.BooleanField()
    events_archived_through = serializers.IntegerField(
        allow_null=True,
        help_text="When event archival moved the first events between the two checkpoints to the archive: the "
        "last of them (`events` starts after it; read them from the archive). Null when `events` starts right "
        "after the older checkpoint's event version.",
    )


class BadLinkOut(serializers.Serializer[Any]):
    checkpoint_id = serializers.UUIDField(
        allow_null=True,
        help_text="The checkpoint that failed; null when the session's checkpoint head names a newest checkpoint "
        "that is missing.",
    )
    sequence = serializers.IntegerField()
    reason = serializers.CharField()


class VerifiedFromOut(serializers.Serializer[Any]):
    checkpoint_id = serializers.UUIDField()
    sequence = serializers.IntegerField()
    anchored = serializers.BooleanField(
        help_text="True when retention removed this checkpoint's parent: its link is checked against the "
        "removed parent's checksum, which it keeps."
    )


class RetentionAnchorOut(serializers.Serializer[Any]):
    checkpoint_id = serializers.UUIDField()
    sequence = serializers.IntegerField()
    removed_parent_sequence = serializers.IntegerField()


class VerificationOut(serializers.Serializer[Any]):
    valid = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="Links verified before the first bad one (all when valid).")
    first_bad_link = BadLinkOut(allow_null=True)
    verified_from = VerifiedFromOut(
        allow_null=True, help_text="The oldest kept checkpoint, where the chain is verified from (null: none)."
    )
    removed_by_retention = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        help_text="Sequences retention removed, as [first, last] ranges.",
    )
    retention_anchors = RetentionAnchorOut(
        many=True, help_text="Kept checkpoints that start the chain because retention removed their parent."
    )
