"""Everything held about one person, layer by layer: what erasure removes and export gathers.

A person is (tenant, user id). Their data is: their sessions and all that hangs off them (events,
snapshots, operations, checkpoints, session-scoped and derived memories, promotion jobs), their user-scoped
memories with vectors and history, their profile and its outbox, their data keys, the LangGraph store items in
their namespaces (settings.ERASURE_STORE_NAMESPACES: `("users", user_id, ...)` and the like), and in Redis the
hot context and tool state of their sessions, the idempotency records of requests about them, and the live
channels of their sessions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db.models import Q, QuerySet

from checkpoints_app.models import Checkpoint
from compliance_app.keys import subject_of
from compliance_app.models import PersonKey
from langgraph_app.models import ChannelBlob, PendingWrite, StoreItem, ThreadCheckpoint
from langgraph_app.selectors import store_items_of, store_namespaces_of
from lifecycle_app.models import ArchiveSegment
from memories_app.models import Memory, MemoryRevision, ProfileFactOutbox, PromotionJob, Source, UserProfile
from memory_admin.health import redis_client
from memory_admin.live import channel_name, session_group
from sessions_app.context import session_keys_pattern
from sessions_app.models import AgentSession, Event, EventSnapshot, Operation
from tenants_app.models import Tenant

LAYERS = (
    "sessions",
    "events",
    "snapshots",
    "operations",
    "checkpoints",
    "langgraph_checkpoints",
    "langgraph_values",
    "langgraph_store_items",
    "memories",
    "memory_vectors",
    "derived_memories",
    "memory_revisions",
    "promotion_jobs",
    "profile",
    "profile_outbox",
    "data_keys",
    "redis_hot_keys",
    "redis_idempotency_records",
    "live_channel_subscribers",
    "archived_sessions",
)


@dataclass
class Person:
    tenant: Tenant
    user_id: str
    identifiers: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return subject_of(self.tenant.pk, self.user_id)

    def sessions(self) -> QuerySet[AgentSession]:
        """Every session of the person, erased or not."""
        return AgentSession.all_objects.filter(tenant=self.tenant, user_id=self.user_id)

    def session_pks(self) -> list[Any]:
        return list(self.sessions().values_list("pk", flat=True))

    def store_items(self) -> QuerySet[StoreItem]:
        """The LangGraph store items in the person's namespaces."""
        return store_items_of(tenant=self.tenant, user_id=self.user_id, namespaces=settings.ERASURE_STORE_NAMESPACES)

    def store_namespaces(self) -> list[list[str]]:
        """The namespaces of those items, in label order: what the approver sees."""
        owned = store_namespaces_of(
            tenant=self.tenant, user_id=self.user_id, namespaces=settings.ERASURE_STORE_NAMESPACES
        )
        return [prefix.split(".") for prefix in owned]

    def memories(self, session_pks: list[Any] | None = None) -> QuerySet[Memory]:
        """User memories, session memories of their sessions, and what was derived from their sessions."""
        pks = self.session_pks() if session_pks is None else session_pks
        return Memory.objects.filter(tenant=self.tenant).filter(Q(user_id=self.user_id) | Q(session_id__in=pks))


def _redis_hot_keys(session_pks: list[Any]) -> list[str]:
    client = redis_client()
    keys: list[str] = []
    for pk in session_pks:
        for pattern in session_keys_pattern(pk):
            if "*" in pattern:
                keys += [key.decode() for key in client.scan_iter(match=pattern, count=500)]
            elif client.exists(pattern):
                keys.append(pattern)
    return keys


def idempotency_records(person: Person, session_ids: list[str]) -> list[str]:
    """The tenant's idempotency records whose request or response is about the person."""
    client = redis_client()
    prefixes = tuple(f"/api/v1/sessions/{session_id}" for session_id in session_ids)
    found = []
    for key in client.scan_iter(match=f"mem:idem:{person.tenant.pk}:*", count=1000):
        raw = client.get(key)
        if raw is None:
            continue
        record = json.loads(raw)
        path = record.get("path", "")
        data = json.dumps(record.get("data"))
        if (prefixes and path.startswith(prefixes)) or json.dumps(person.user_id) in data:
            found.append(key.decode())
    return found


def preview(person: Person) -> dict[str, int]:
    """Exact counts, per layer, of what erasing the person would remove now."""
    counts = {**stored_rows(person), **volatile(person)}
    return {layer: counts[layer] for layer in LAYERS}


def stored_rows(person: Person) -> dict[str, int]:
    """The layers whose rows stay in place from approval until the purge deletes them (the costly counts)."""
    session_pks = person.session_pks()
    memories = person.memories(session_pks)
    return {
        "sessions": len(session_pks),
        "events": Event.objects.filter(session_id__in=session_pks).count(),
        "snapshots": EventSnapshot.objects.filter(session_id__in=session_pks).count(),
        "operations": Operation.objects.filter(session_id__in=session_pks).count(),
        "checkpoints": Checkpoint.objects.filter(session_id__in=session_pks).count(),
        "langgraph_checkpoints": ThreadCheckpoint.objects.filter(session_id__in=session_pks).count(),
        # Channel values and pending writes: the state LangGraph saved, sealed with the person's key.
        "langgraph_values": ChannelBlob.objects.filter(session_id__in=session_pks).count()
        + PendingWrite.objects.filter(session_id__in=session_pks).count(),
        "memories": memories.count(),
        "memory_vectors": memories.filter(embedding__isnull=False).count(),
        "derived_memories": memories.filter(source__in=[Source.PROMOTION, Source.DISTILLATION]).count(),
        "memory_revisions": MemoryRevision.objects.filter(memory__in=memories).count(),
        "promotion_jobs": PromotionJob.objects.filter(session_id__in=session_pks).count(),
        "archived_sessions": ArchiveSegment.objects.filter(session_id__in=session_pks).count(),
    }


def volatile(person: Person) -> dict[str, int]:
    """The layers approval itself removes (store items, profile, outbox, keys, Redis): counted before it does."""
    session_pks = person.session_pks()
    counts = {
        "langgraph_store_items": person.store_items().count(),
        "profile": UserProfile.objects.filter(tenant=person.tenant, user_id=person.user_id).count(),
        "profile_outbox": ProfileFactOutbox.objects.filter(tenant=person.tenant, user_id=person.user_id).count(),
        "data_keys": PersonKey.objects.filter(tenant=person.tenant, subject=person.subject).count(),
    }
    try:
        session_ids = list(person.sessions().values_list("session_id", flat=True))
        counts["redis_hot_keys"] = len(_redis_hot_keys(session_pks))
        counts["redis_idempotency_records"] = len(idempotency_records(person, session_ids))
        channels = [channel_name(session_group(pk)) for pk in session_pks]
        counts["live_channel_subscribers"] = (
            sum(n for _, n in redis_client().pubsub_numsub(*channels)) if channels else 0
        )
    except redis.RedisError:
        counts.update(redis_hot_keys=-1, redis_idempotency_records=-1, live_channel_subscribers=-1)
    return counts


def purge_redis(person: Person, session_pks: list[Any]) -> int:
    """Delete the person's hot keys and idempotency records; returns how many keys went."""
    session_ids = list(AgentSession.all_objects.filter(pk__in=session_pks).values_list("session_id", flat=True))
    keys = _redis_hot_keys(session_pks) + idempotency_records(person, session_ids)
    return int(redis_client().delete(*keys)) if keys else 0
