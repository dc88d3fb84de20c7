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
import re
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db.models import Q, QuerySet

from checkpoints_app.models import Checkpoint
from compliance_app.keys import subject_of
from compliance_app.models import PersonKey
from langgraph_app.models import ChannelBlob, PendingWrite, StoreItem, ThreadCheckpoint
from langgraph_app.selectors import namespace_owner, store_items_of, store_namespaces_of
from lifecycle_app.models import ArchiveSegment
from memories_app.models import (
    Memory,
    MemoryQuerySet,
    MemoryRevision,
    ProfileFactOutbox,
    PromotionJob,
    Source,
    UserProfile,
)
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
    """One person of a tenant. A blank user id names no one: such a person holds nothing, since `user_id=""`
    would match what belongs to no one in particular (the tenant's global memories, sessions without a user)."""

    tenant: Tenant
    user_id: str
    identifiers: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return subject_of(self.tenant.pk, self.user_id)

    @property
    def named(self) -> bool:
        return bool(self.user_id)

    def sessions(self) -> QuerySet[AgentSession]:
        """Every session of the person, erased or not."""
        if not self.named:
            return AgentSession.all_objects.none()
        return AgentSession.all_objects.filter(tenant=self.tenant, user_id=self.user_id)

    def session_pks(self) -> list[Any]:
        return list(self.sessions().values_list("pk", flat=True))

    def profiles(self) -> QuerySet[UserProfile]:
        """Their profile (at most one)."""
        if not self.named:
            return UserProfile.objects.none()
        return UserProfile.objects.filter(tenant=self.tenant, user_id=self.user_id)

    def profile_outbox(self) -> QuerySet[ProfileFactOutbox]:
        """The facts of their profile still on their way to memories."""
        if not self.named:
            return ProfileFactOutbox.objects.none()
        return ProfileFactOutbox.objects.filter(tenant=self.tenant, user_id=self.user_id)

    def store_items(self) -> QuerySet[StoreItem]:
        """The LangGraph store items in the person's namespaces."""
        return store_items_of(tenant=self.tenant, user_id=self.user_id, namespaces=settings.ERASURE_STORE_NAMESPACES)

    def store_namespaces(self) -> list[list[str]]:
        """The namespaces of those items, in label order: what the approver sees."""
        owned = store_namespaces_of(
            tenant=self.tenant, user_id=self.user_id, namespaces=settings.ERASURE_STORE_NAMESPACES
        )
        return [prefix.split(".") for prefix in owned]

    def memories(self, session_pks: list[Any] | None = None) -> MemoryQuerySet:
        """User memories, session memories of their sessions, and what was derived from their sessions."""
        pks = self.session_pks() if session_pks is None else session_pks
        theirs = Q(session_id__in=pks) | Q(user_id=self.user_id) if self.named else Q(session_id__in=pks)
        return Memory.objects.filter(tenant=self.tenant).filter(theirs)


_SESSION_MARK = "SESSIONPK"


def redis_hot_keys(session_pks: list[Any]) -> list[str]:
    """The Redis keys holding these sessions' hot data (context windows, tool states).

    Exact keys are checked in one round trip. A pattern's keys ("mem:tool:<session>:*") are found by one SCAN
    of the pattern with the session left open, then kept when the session is one of these: a SCAN reads the
    whole keyspace whatever it matches, so one per session would read it once for each (a tenant's deletion
    may name thousands).
    """
    client = redis_client()
    wanted = {str(pk) for pk in session_pks}
    exact: list[str] = []
    opened: dict[str, re.Pattern[str]] = {}  # the pattern with any session, and what finds the session in a key
    for pk in session_pks:
        for pattern in session_keys_pattern(pk):
            if "*" not in pattern:
                exact.append(pattern)
                continue
            template = pattern.replace(str(pk), _SESSION_MARK, 1)
            if template.replace(_SESSION_MARK, "*") not in opened:
                found = re.escape(template).replace(_SESSION_MARK, "(?P<session>[^:]+)").replace(r"\*", ".*")
                opened[template.replace(_SESSION_MARK, "*")] = re.compile(found + r"\Z")
    keys: list[str] = []
    if exact:
        pipe = client.pipeline(transaction=False)
        for key in exact:
            pipe.exists(key)
        keys += [key for key, present in zip(exact, pipe.execute(), strict=True) if present]
    for wide, finds in opened.items():
        for raw in client.scan_iter(match=wide, count=1000):
            key = raw.decode()
            match = finds.match(key)
            if match is not None and match["session"] in wanted:
                keys.append(key)
    return keys


def _api_route(path: str) -> list[str]:
    """The path's segments after /api/v1/ (whatever script name comes before it); [] for any other path."""
    _, found, rest = path.partition("/api/v1/")
    return rest.split("/") if found else []


# Routes whose path names a session (a LangGraph thread is a session), by the segment after them.
_SESSION_ROUTES = (("sessions",), ("langgraph", "threads"))
# Requests that only read: replaying one again changes nothing, so erasure may drop a record of one that shows
# the person among others (the retry just reads again, without them).
_READ_ROUTES = (("memories", "search"), ("langgraph", "store", "batch"))


def _names(route: list[str], prefixes: tuple[tuple[str, ...], ...], ids: set[str]) -> bool:
    """Whether the route is under one of the prefixes and the next segment is exactly one of the ids."""
    for prefix in prefixes:
        if tuple(route[: len(prefix)]) == prefix and len(route) > len(prefix) and route[len(prefix)] in ids:
            return True
    return False


def _names_person(route: list[str], user_id: str) -> bool:
    """Whether the route is the person's own, `users/<user id>/profile`, with their id whole: records keep the
    path decoded, as the router matched it, so the profile of a user id holding a slash ("kim" + "/" + "work")
    is not the profile of the id before the slash ("kim")."""
    return "/".join(route) == f"users/{user_id}/profile"


def _their_namespace(namespace: Any, person: Person) -> bool:
    """Whether a store namespace (a list of labels) is one of the person's (settings.ERASURE_STORE_NAMESPACES)."""
    if not isinstance(namespace, list) or not namespace or not all(isinstance(label, str) for label in namespace):
        return False
    return namespace_owner(".".join(namespace), settings.ERASURE_STORE_NAMESPACES) == person.user_id


def _one_of_theirs(resource: Any, person: Person, session_ids: set[str]) -> bool:
    """A resource of the person by an exact field: their user id, one of their sessions, or (a store item) one
    of their namespaces."""
    if not isinstance(resource, dict):
        return False
    session_id = resource.get("session_id")
    return (
        resource.get("user_id") == person.user_id
        or (isinstance(session_id, str) and session_id in session_ids)
        or _their_namespace(resource.get("namespace"), person)
    )


def _holds_one_of_theirs(data: Any, person: Person, session_ids: set[str]) -> bool:
    """Whether a response holds a resource of the person among others: an item of a list it holds (a batch's
    memories), or in the results of a store batch an item an operation read or a namespace one listed."""
    if not isinstance(data, dict):
        return False
    for value in data.values():
        if not isinstance(value, list):
            continue
        for item in value:
            if _one_of_theirs(item, person, session_ids):
                return True
            if isinstance(item, list) and any(
                _one_of_theirs(inner, person, session_ids) or _their_namespace(inner, person) for inner in item
            ):
                return True
    return False


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

    # Provably theirs: the request's path names one of their sessions or threads, or them (`/users/<id>/profile`),
    # or its response is a resource of theirs (or a batch of nothing else). Exported, and purged.
    theirs: list[str]
    # Responses that hold their data among others' (a batch that wrote one of their memories with another
    # person's, a store batch that read one of their items and wrote elsewhere, a search that showed them): not
    # theirs to export, but purged, so that no retry after the erasure replays their data (the retry runs again).
    showing_them: list[str]

    def to_purge(self) -> list[str]:
        return self.theirs + self.showing_them


def find_idempotency_records(person: Person, session_ids: list[str]) -> IdempotencyRecords:
    """Sort the tenant's idempotency records (api.idempotency: method, path, response) by what they are to
    the person. A record that merely mentions them in another person's write (bob's memory naming kate) is
    neither: it stays bob's, and his retry is still replayed instead of writing twice.

    A session id that now names another person's live session is that person's: an erased session's id may
    be used again (once approval purged the erased person's records under it), and the records of the new
    session's requests name it as the erased one's did."""
    found = IdempotencyRecords(theirs=[], showing_them=[])
    if not person.named:
        return found
    client = redis_client()
    reused = AgentSession.objects.filter(tenant=person.tenant, session_id__in=session_ids).exclude(
        user_id=person.user_id
    )
    sessions = set(session_ids) - set(reused.values_list("session_id", flat=True))
    needles = {person.user_id, *sessions}
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
            or _names_person(route, person.user_id)
            or _one_of_theirs(data, person, sessions)
            or (isinstance(batch, list) and bool(batch) and all(_one_of_theirs(m, person, sessions) for m in batch))
        ):
            found.theirs.append(key.decode())
        elif _holds_one_of_theirs(data, person, sessions) or (_is_read(route, data) and _mentions(data, needles)):
            found.showing_them.append(key.decode())
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


VOLATILE_LAYERS = (
    "langgraph_store_items",
    "profile",
    "profile_outbox",
    "data_keys",
    "redis_hot_keys",
    "redis_idempotency_records",
    "live_channel_subscribers",
)


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
    if not person.named:
        return dict.fromkeys(VOLATILE_LAYERS, 0)
    session_pks = person.session_pks()
    counts = {
        "langgraph_store_items": person.store_items().count(),
        "profile": person.profiles().count(),
        "profile_outbox": person.profile_outbox().count(),
        # The live ones: an earlier erasure of a returning person destroyed (and counted) theirs already.
        "data_keys": PersonKey.objects.filter(
            tenant=person.tenant, subject=person.subject, destroyed_at__isnull=True
        ).count(),
    }
    try:
        session_ids = list(person.sessions().values_list("session_id", flat=True))
        counts["redis_hot_keys"] = len(redis_hot_keys(session_pks))
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

    Their own records become erased markers (api.idempotency.mark_erased) for the rest of their lifetime: a
    retry of one of their writes is a 410, where running it again would store what was just erased (a session,
    a profile fact, a memory). A record that only showed them among others goes: its retry runs again.

    `session_ids` are the sessions' own ids (what request paths name), for a caller that already deleted the
    session rows; by default they are read from those rows.
    """
    # (Imported here: the API's idempotency module imports tenants_app, which imports this module.)
    from memory_admin.api.idempotency import mark_erased

    if session_ids is None:
        session_ids = list(AgentSession.all_objects.filter(pk__in=session_pks).values_list("session_id", flat=True))
    records = find_idempotency_records(person, session_ids)
    keys = redis_hot_keys(session_pks) + records.showing_them
    deleted = int(redis_client().delete(*keys)) if keys else 0
    return deleted + mark_erased(records.theirs)
