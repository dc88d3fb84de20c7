"""Live updates: typed messages published after commit to narrow groups, one per session and one per tenant.

Writers call `publish_on_commit`; the message goes out only if the transaction commits, so a page never
shows what was rolled back. Transport is Redis pub/sub, one channel per group (`mem:live:<group>`): one
PUBLISH per group, no per-request event loop. The dashboard's WebSocket consumer subscribes to the groups
its user may see (memory_admin/dashboard/consumers.py documents what it passes on to each page). Delivery is
best-effort by design: a page that reconnects catches up from Postgres, starting after what it last saw.

Message types (every message has `type`, `tenant`, and `at`, an ISO timestamp):

| type | group | fields |
|---|---|---|
| `session.created` | tenant | session, user_id, status |
| `session.updated` | tenant, session | session, status, version |
| `event.appended` | session | session, version, event_type, count (events in the batch), first_version |
| `session.erased` | session, tenant | (the person was erased: pages drop what they show); to the tenant: sessions |
| `erasure.updated` | tenant | erasure (id), status, progress (purge: layer, rows removed per layer) |
| `export.updated` | tenant | export (id), status, progress (rows written per layer) |
| `operation.recorded` | session | session, operation, status |
| `memory.created` | tenant (and session for session-bound memories) | memory, scope |
| `memory.updated` | tenant | memory, version |
| `memory.deleted` | tenant | memory |
| `promotion.finished` | tenant, session | session, job, kind (promote or distill), created, updated (counts) |
| `profile.updated` | tenant | profile (row id, no user id), version |
| `checkpoint.saved` | session | session, checkpoint (id), sequence, parent (id or null), node_id, kind |
| `langgraph.checkpoint.saved` | session | session, checkpoint_ns, checkpoint_id, parent_checkpoint_id, step |
| `api_key.created`, `api_key.revoked` | tenant | key (id); the consumer passes them to admins only |

A tenant's `session.erased` names the person's sessions by their row ids (uuids), never by anything that names
the person.

What the sessions list shows (`session.created`, `session.updated`, `session.erased`) also goes, when published to
a tenant, to the group of every tenant's sessions (`ALL_SESSIONS_GROUP`), which the unfiltered list watches: one
more PUBLISH in the same round trip, for those types only. So do `api_key.*` messages, to the group of every
tenant's keys (`ALL_KEYS_GROUP`), which the unfiltered API keys page watches.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
import structlog
from django.db import transaction
from django.utils import timezone
from rest_framework.utils.encoders import JSONEncoder

from memory_admin.redis_wire import Batch

logger = structlog.get_logger("memory.live")

CHANNEL_PREFIX = "mem:live:"
ALL_SESSIONS_GROUP = "sessions"
ALL_KEYS_GROUP = "api_keys"
_SESSION_LIST_TYPES = frozenset({"session.created", "session.updated", "session.erased"})


def session_group(session_pk: object) -> str:
    return f"session.{session_pk}"


def tenant_group(tenant_pk: object) -> str:
    return f"tenant.{tenant_pk}"


def channel_name(group: str) -> str:
    return CHANNEL_PREFIX + group


def queue(pipe: Any, groups: Sequence[str], message: dict[str, Any]) -> None:
    """Queue the PUBLISH commands on a pipeline the caller executes (after commit)."""
    payload = json.dumps({**message, "at": timezone.now().isoformat()}, cls=JSONEncoder)
    for group in groups:
        pipe.publish(channel_name(group), payload)
    every_tenant = _every_tenant_group(message.get("type"))
    if every_tenant is not None and any(group.startswith("tenant.") for group in groups):
        pipe.publish(channel_name(every_tenant), payload)


def _every_tenant_group(message_type: object) -> str | None:
    """The group of every tenant that a tenant's message of this type also goes to, for the unfiltered lists."""
    if message_type in _SESSION_LIST_TYPES:
        return ALL_SESSIONS_GROUP
    if isinstance(message_type, str) and message_type.startswith("api_key."):
        return ALL_KEYS_GROUP
    return None


def publish(groups: Sequence[str], message: dict[str, Any]) -> None:
    """Publish now, or once the response is sent inside the hot lane (`held`); use `publish_on_commit` from
    inside a transaction."""
    publish_all([(groups, message)])


def publish_on_commit(groups: Sequence[str], message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: publish(groups, message))


Messages = list[tuple[Sequence[str], dict[str, Any]]]

# While the hot lane answers a request, what it publishes waits until the response is on its way (`held`):
# the agent does not wait for a Redis round trip that only the dashboard needs.
_holding = threading.local()


def publish_all(messages: Sequence[tuple[Sequence[str], dict[str, Any]]]) -> None:
    """Publish several messages in one round trip (a batch write announces each of its rows), as `publish`."""
    held: Messages | None = getattr(_holding, "messages", None)
    if held is not None:
        held.extend(messages)
        return
    send(messages)


def send(messages: Sequence[tuple[Sequence[str], dict[str, Any]]]) -> None:
    """Publish now, whoever holds messages; Redis trouble drops them (delivery is best-effort)."""
    if not messages:
        return
    try:
        batch = Batch()
        for groups, message in messages:
            queue(batch, groups, message)
        batch.execute()
    except redis.RedisError as exc:
        logger.warning("live_update_dropped", error=type(exc).__name__, type=messages[0][1].get("type"))


@contextmanager
def held() -> Iterator[Messages]:
    """Keep what this thread publishes until the caller `send`s it (the hot lane: once its response is sent).

    Messages held when the process dies are lost, like any in flight: pages catch up from Postgres when
    they reconnect.
    """
    outer = getattr(_holding, "messages", None)
    messages: Messages = []
    _holding.messages = messages
    try:
        yield messages
    finally:
        _holding.messages = outer


def publish_all_on_commit(messages: Sequence[tuple[Sequence[str], dict[str, Any]]]) -> None:
    transaction.on_commit(lambda: publish_all(messages))
