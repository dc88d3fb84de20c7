"""Everything held about one person, layer by layer: what erasure removes and export gathers.

A person is (tenant, user id). Their data is: their sessions and all that hangs off them (events,
snapshots, operations, checkpoints, session-scoped and derived memories, promotion jobs), their user-scoped
memories with vectors and history, their profile and its outbox, their data keys, the LangGraph store items in
their namespaces (settings.ERASURE_STORE_NAMESPACES: `("users", user_id, ...)` and the like), and in Redis the
hot context and tool state of their sessions, the idempotency records of their requests (see
`find_idempotency_records`), and the live channels of their sessions.
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


def _api_route(path: str) -> list[str]:
    """The path's segments after /api/v1/ (whatever script name comes before it); [] for any other path."""
    _, found, rest = path.partition("/api/v1/")
    return rest.split("/") if found else []


# Routes whose path names a session (a LangGraph thread is a session) or a person, by the segment after them.
_SESSION_ROUTES = (("sessions",), ("langgraph", "threads"))
_PERSON_ROUTES = (("users",),)
# Requests that only read: replaying one again changes nothing, so erasure may drop a record of one that shows
# the person among others (the retry just reads again, without them).
_READ_ROUTES = (("memories", "search"), ("langgraph", "store", "batch"))


def _names(route: list[str], prefixes: tuple[tuple[str, ...], ...], ids: set[str]) -> bool:
    """Whether the route is under one of the prefixes and the next segment is exactly one of the ids."""
    for prefix in prefixes:
        if tuple(route[: len(prefix)]) == prefix and len(route) > len(prefix) and route[len(prefix)] in ids:
            return True
    return False


def _one_of_theirs(resource: Any, person: Person, session_ids: set[str]) -> bool:
    """A resource of the person by an exact field: their user id, or one of their sessions."""
    if not isinstance(resource, dict):
        return False
    return resource.get("user_id") == person.user_id or resource.get("session_id") in session_ids


def _mentions(data: Any, needles: set[str]) -> bool:
    """Whether any string value in the JSON is exactly one of the needles (not merely contains one)."""
    if isinstance(data, str):
        return data in needles
    if isinstance(data, dict):
        return any(_mentions(value, needles) for value in data.values())
    if isinstance(data, list):
        return any(_mentions(value, needles) for value in data)
    return False


@dataclass
class IdempotencyRecords:
    """The tenant's idempotency records (Redis keys) that concern the person."""

    # Provably theirs: the request's path names one of their sessions or threads, or them (`/users/<id>/...`),
    # or its response is a resource of theirs (or a batch of nothing else). Exported, and purged.
    theirs: list[str]
    # Replays of reads that show the person among others (a search): not theirs to export, but purged, so that
    # a retry after the erasure reads again instead of replaying their data.
    reads_showing_them: list[str]

    def to_purge(self) -> list[str]:
        return self.theirs + self.reads_showing_them


def find_idempotency_records(person: Person, session_ids: list[str]) -> IdempotencyRecords:
    """Sort the tenant's idempotency records (api.idempotency: method, path, response) by what they are to
    the person. A record that merely mentions them in another person's write (bob's memory naming kate) is
    neither: it stays bob's, and his retry is still replayed instead of writing twice."""
    client = redis_client()
    sessions = set(session_ids)
    needles = {person.user_id, *sessions}
    found = IdempotencyRecords(theirs=[], reads_showing_them=[])
    for key in client.scan_iter(match=f"mem:idem:{person.tenant.pk}:*", count=1000):
        raw = client.get(key)
        if raw is None:
            continue
        record = json.loads(raw)
        if record.get("state") != "done":
            continue
        route = _api_route(str(record.get("path", "")))
        data = record.get("data")
        batch = data.get("memories") if isinstance(data, dict) and len(data) == 1 else None
        if (
            _names(route, _SESSION_ROUTES, sessions)
            or _names(route, _PERSON_ROUTES, {person.user_id})
            or _one_of_theirs(data, person, sessions)
            or (isinstance(batch, list) and bool(batch) and all(_one_of_theirs(m, person, sessions) for m in batch))
        ):
            found.theirs.append(key.decode())
        elif _is_read(route, data) and _mentions(data, needles):
            found.reads_showing_them.append(key.decode())
    return found


def _is_read(route: list[str], data: Any) -> bool:
    if tuple(route) not in _READ_ROUTES:
        return False
    if tuple(route) == ("langgraph", "store", "batch"):
        # A put or delete answers null: a batch with one is a write, replayed rather than run again.
        results = data.get("results") if isinstance(data, dict) else None
        return isinstance(results, list) and all(result is not None for result in results)
    return True


def idempotency_records(person: Person, session_ids: list[str]) -> list[str]:
    """The tenant's idempotency records that are the person's own (what an export of them holds)."""
    return find_idempotency_records(person, session_ids).theirs


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
        counts["redis_idempotency_records"] = len(find_idempotency_records(person, session_ids).to_purge())
        channels = [channel_name(session_group(pk)) for pk in session_pks]
        counts["live_channel_subscribers"] = (
            sum(n for _, n in redis_client().pubsub_numsub(*channels)) if channels else 0
        )
    except redis.RedisError:
        counts.update(redis_hot_keys=-1, redis_idempotency_records=-1, live_channel_subscribers=-1)
    return counts


def purge_redis(person: Person, session_pks: list[Any], session_ids: list[str] | None = None) -> int:
    """Delete the person's hot keys and idempotency records; returns how many keys went.

    `session_ids` are the sessions' own ids (what request paths name), for a caller that already deleted the
    session rows; by default they are read from those rows.
    """
    if session_ids is None:
        session_ids = list(AgentSession.all_objects.filter(pk__in=session_pks).values_list("session_id", flat=True))
    keys = _redis_hot_keys(session_pks) + find_idempotency_records(person, session_ids).to_purge()
    return int(redis_client().delete(*keys)) if keys else 0
