"""Request and response bodies of the memory API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from lifecycle_app.lifetimes import eviction_for
from memories_app.models import JobKind, JobStatus, Memory, RevisionKind, Scope, Source
from memory_admin.api.serializers import StrictSerializer, api_timestamp

MAX_VECTOR_LENGTH = 2000
MAX_IDS = 1000


class VectorField(serializers.ListField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.FloatField(), max_length=MAX_VECTOR_LENGTH, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        # One pass over a list of plain numbers; the generic path runs a FloatField per component (several
        # milliseconds for a 1,536-dimension vector) and still answers everything else, errors included.
        if isinstance(data, list) and len(data) <= MAX_VECTOR_LENGTH and set(map(type, data)) <= _NUMBERS:
            try:
                return [float(x) for x in data]
            except OverflowError:
                pass
        return super().to_internal_value(data)


_NUMBERS = {float, int}  # not bool, which is an int subclass


# --- Memories ------------------------------------------------------------------------------------------


class MemoryCreateSerializer(StrictSerializer):
    scope = serializers.ChoiceField(choices=Scope.choices)
    content = serializers.CharField(trim_whitespace=False)
    user_id = serializers.CharField(required=False, allow_blank=True, max_length=256, trim_whitespace=False)
    session_id = serializers.CharField(required=False, allow_blank=True, max_length=128)
    metadata = serializers.DictField(required=False)
    embedding = VectorField(
        required=False, help_text="A vector of the active embedder's dimension; computed when absent."
    )


_CREATE_FIELDS = frozenset({"scope", "content", "user_id", "session_id", "metadata", "embedding"})
_ID_LIMITS = {"user_id": 256, "session_id": 128}


def _plain_text(value: Any) -> bool:
    return type(value) is str and "\x00" not in value


def quick_memory_fields(item: Any) -> dict[str, Any] | None:
    """MemoryCreateSerializer's validated data for a plainly well-formed item, or None to let the serializer
    decide (and word the errors): a batch of 200 items spends more CPU in DRF's per-field machinery than in
    storing them. It accepts only what the serializer accepts unchanged, so both always agree (tested).
    """
    if type(item) is not dict or not item.keys() <= _CREATE_FIELDS:
        return None
    scope, content = item.get("scope"), item.get("content")
    if type(scope) is not str or scope not in Scope.values or not _plain_text(content) or content == "":
        return None
    fields: dict[str, Any] = {"scope": scope, "content": content}
    for name, limit in _ID_LIMITS.items():
        if name in item:
            value = item[name]
            # A value with spaces around it is left to the serializer (which keeps a user id as given).
            if not _plain_text(value) or len(value) > limit or value != value.strip():
                return None
            fields[name] = value
    if "metadata" in item:
        if type(item["metadata"]) is not dict:
            return None
        fields["metadata"] = item["metadata"]
    if "embedding" in item:
        vector = item["embedding"]
        if type(vector) is not list or len(vector) > MAX_VECTOR_LENGTH or not set(map(type, vector)) <= _NUMBERS:
            return None
        try:
            fields["embedding"] = [float(x) for x in vector]
        except OverflowError:
            return None
    return fields


class MemoryBatchSerializer(StrictSerializer):
    # A list field (not many=True) so that the schema states its bounds as the service has them.
    memories = serializers.ListField(child=MemoryCreateSerializer(), min_length=1, max_length=settings.MEMORY_BATCH_MAX)


class MemoryUpdateSerializer(StrictSerializer):
    content = serializers.CharField(required=False, trim_whitespace=False)
    metadata = serializers.DictField(required=False)
    on_conflict = serializers.ChoiceField(
        choices=[("fail", "fail"), ("merge", "merge")],
        default="fail",
        help_text=(
            "With a stale If-Match: `fail` answers 412 with the current memory; `merge` merges the texts "
            "(metadata is not merged: a stale update that changes it is a 412 all the same)."
        ),
    )


class MemorySerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    scope = serializers.ChoiceField(choices=Scope.choices)
    user_id = serializers.CharField()
    session_id = serializers.SerializerMethodField()
    content = serializers.CharField()
    metadata = serializers.DictField()
    source = serializers.ChoiceField(choices=Source.choices)  # type: ignore[assignment]  # a field named like Field.source
    access_count = serializers.IntegerField()
    last_accessed_at = serializers.DateTimeField(allow_null=True)
    decay_score = serializers.SerializerMethodField(
        help_text="2^(-days since the last access, update or creation / half-life) * ln(2 + accesses)"
    )
    eviction_candidate = serializers.SerializerMethodField(
        help_text="Whether the tenant's memory eviction would take it now: its decay score is below the policy's "
        "threshold (eviction on, not a profile fact)"
    )
    embedding_model = serializers.CharField()
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def _now(self) -> datetime:
        now: datetime = self.context.setdefault("now", timezone.now())
        return now

    def get_session_id(self, memory: Memory) -> str | None:
        return memory.session.session_id if memory.session is not None else None

    def get_decay_score(self, memory: Memory) -> float:
        return round(memory.decay_score(now=self._now()), 6)

    def get_eviction_candidate(self, memory: Memory) -> bool:
        return memory.is_eviction_candidate(threshold=eviction_for(memory.tenant_id).threshold, now=self._now())


def represent_memory(memory: Memory, *, now: datetime) -> dict[str, Any]:
    """MemorySerializer's output, built directly: a search answers up to k memories per call and the generic
    serializer costs ~0.2 ms of CPU per memory. MemorySerializer stays the documented shape, and a test keeps
    the two equal field for field.
    """
    decay = memory.decay_score(now=now)
    threshold = eviction_for(memory.tenant_id).threshold
    return {
        "id": str(memory.id),
        "scope": str(memory.scope),
        "user_id": memory.user_id,
        "session_id": memory.session.session_id if memory.session is not None else None,
        "content": memory.content,
        "metadata": memory.metadata,
        "source": str(memory.source),
        "access_count": memory.access_count,
        "last_accessed_at": None if memory.last_accessed_at is None else api_timestamp(memory.last_accessed_at),
        "decay_score": round(decay, 6),
        "eviction_candidate": threshold is not None and memory.source != Source.PROFILE and decay < threshold,
        "embedding_model": memory.embedding_model,
        "version": memory.version,
        "created_at": api_timestamp(memory.created_at),
        "updated_at": api_timestamp(memory.updated_at),
    }


class MemoryRevisionSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=RevisionKind.choices)
    actor = serializers.CharField()
    previous_content = serializers.CharField()
    content = serializers.CharField()
    inputs = serializers.DictField()
    created_at = serializers.DateTimeField()


# --- Search and recall ---------------------------------------------------------------------------------


class MemoryBatchResultSerializer(serializers.Serializer[Any]):
    memories = MemorySerializer(many=True)


class MemoryHistorySerializer(serializers.Serializer[Any]):
    revisions = MemoryRevisionSerializer(many=True)


class SearchSerializer(StrictSerializer):
    query = serializers.CharField(required=False, trim_whitespace=False)
    embedding = VectorField(required=False)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices), default=["user"], allow_empty=False, max_length=3
    )
    user_id = serializers.CharField(required=False, allow_blank=True, max_length=256, trim_whitespace=False)
    session_id = serializers.CharField(required=False, allow_blank=True, max_length=128)
    k = serializers.IntegerField(default=10, min_value=1)
    min_score = serializers.FloatField(default=-1.0, min_value=-1.0, max_value=1.0)
    metadata = serializers.DictField(required=False, help_text="Only memories whose metadata contains these pairs.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("query" in attrs) == ("embedding" in attrs):
            raise serializers.ValidationError({"query": ["Send exactly one of query and embedding."]})
        return attrs


class ScoredMemorySerializer(serializers.Serializer[Any]):
    score = serializers.FloatField()
    memory = MemorySerializer()


class SearchResultSerializer(serializers.Serializer[Any]):
    results = ScoredMemorySerializer(many=True)


class RecallQuerySerializer(StrictSerializer):
    query = serializers.CharField(required=False, allow_blank=True, max_length=8000)
    context_limit = serializers.IntegerField(default=20, min_value=0, max_value=500)
    session_limit = serializers.IntegerField(default=5, min_value=0, max_value=100)
    user_limit = serializers.IntegerField(default=5, min_value=0, max_value=100)
    global_limit = serializers.IntegerField(default=3, min_value=0, max_value=100)
    min_score = serializers.FloatField(
        default=-1.0,
        min_value=-1.0,
        max_value=1.0,
        help_text="The lowest similarity kept. With nothing to rank by (no query, and no user message in the "
        "context or one the embedder refuses), memories come newest first scored 0, so a positive min_score keeps "
        "none.",
    )


class RecallSerializer(serializers.Serializer[Any]):
    query = serializers.CharField()
    context = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]  # a field named like Field.context
    session_memories = ScoredMemorySerializer(many=True)
    user_memories = ScoredMemorySerializer(many=True)
    global_memories = ScoredMemorySerializer(many=True)


# --- Promotion -----------------------------------------------------------------------------------------


class PromoteSerializer(StrictSerializer):
    memory_ids = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=MAX_IDS)
    texts = serializers.ListField(
        child=serializers.CharField(trim_whitespace=False), required=False, max_length=MAX_IDS
    )


class PromotionJobSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=JobKind.choices)
    status = serializers.ChoiceField(choices=JobStatus.choices)
    session_id = serializers.CharField(source="session.session_id")
    created_ids = serializers.ListField(child=serializers.UUIDField())
    updated_ids = serializers.ListField(child=serializers.UUIDField())
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


# --- Profiles ------------------------------------------------------------------------------------------


class ProfileUpdateSerializer(StrictSerializer):
    preferences = serializers.DictField(required=False, help_text="Merged key by key; null removes a key.")
    facts = serializers.DictField(
        child=serializers.CharField(allow_null=True, trim_whitespace=False),
        required=False,
        help_text="{key: text}; null removes the fact. Facts become user memories through the outbox.",
    )
    record_interaction = serializers.BooleanField(default=False)


class ProfileSerializer(serializers.Serializer[Any]):
    user_id = serializers.CharField()
    preferences = serializers.DictField()
    facts = serializers.DictField(child=serializers.CharField())
    interaction_count = serializers.IntegerField()
    last_active_at = serializers.DateTimeField(allow_null=True)
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
