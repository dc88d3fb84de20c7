"""What requests read of a tenant's effective retention policy: how long the hot layer keeps its data (the Redis
lifetimes), and below which decay weight its memories are eviction candidates (every memory the API shows says
whether it is one).

Every agent request needs them, so each process keeps them for LIFETIMES_CACHE_SECONDS instead of reading two
policy rows per request: a change made in the dashboard reaches every process within that time (and this one
at once, see `forget`). Keys already in Redis keep the lifetime they were given until their next write or
touch.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db.models import Q
from django.dispatch import receiver

from lifecycle_app.models import RetentionPolicy


@dataclass(frozen=True)
class RedisLifetimes:
    context_seconds: int
    tool_state_seconds: int
    idempotency_seconds: int


_FIELDS = {
    "context_seconds": ("context_ttl_seconds", "CONTEXT_TTL_SECONDS"),
    "tool_state_seconds": ("tool_state_ttl_seconds", "TOOL_STATE_TTL_SECONDS"),
    "idempotency_seconds": ("idempotency_ttl_seconds", "IDEMPOTENCY_TTL_SECONDS"),
}


@dataclass(frozen=True)
class MemoryEviction:
    # The decay weight below which memories are eviction candidates (the eviction job marks them, then deletes
    # them after the grace period unless they weigh more again); None when the policy turns eviction off.
    threshold: float | None
    grace_days: int


_EVICTION_FIELDS = {
    "enabled": ("memory_eviction_enabled", "MEMORY_EVICTION_ENABLED"),
    "threshold": ("memory_eviction_threshold", "MEMORY_EVICTION_THRESHOLD"),
    "grace_days": ("memory_eviction_grace_days", "MEMORY_EVICTION_GRACE_DAYS"),
}
_DEFAULT_SETTINGS = frozenset(setting for _, setting in (*_FIELDS.values(), *_EVICTION_FIELDS.values())) | {
    "LIFETIMES_CACHE_SECONDS"
}
_cache: dict[uuid.UUID | None, tuple[float, RedisLifetimes, MemoryEviction]] = {}  # tenant -> (expiry, ...)


def _effective(tenant_id: uuid.UUID | None) -> tuple[float, RedisLifetimes, MemoryEviction]:
    now = time.monotonic()
    hit = _cache.get(tenant_id)
    if hit is not None and hit[0] > now:
        return hit
    fields = {**_FIELDS, **_EVICTION_FIELDS}
    rows = {
        row.tenant_id: row
        for row in RetentionPolicy.objects.filter(Q(tenant__isnull=True) | Q(tenant_id=tenant_id)).only(
            "tenant_id", *(column for column, _ in fields.values())
        )
    }
    values: dict[str, Any] = {}
    for name, (column, setting) in fields.items():
        chosen = None
        for row in (rows.get(tenant_id), rows.get(None)):
            if row is not None and getattr(row, column) is not None:
                chosen = getattr(row, column)
                break
        values[name] = getattr(settings, setting) if chosen is None else chosen
    lifetimes = RedisLifetimes(**{name: int(values[name]) for name in _FIELDS})
    eviction = MemoryEviction(
        threshold=float(values["threshold"]) if values["enabled"] else None, grace_days=int(values["grace_days"])
    )
    found = (now + settings.LIFETIMES_CACHE_SECONDS, lifetimes, eviction)
    _cache[tenant_id] = found
    return found


def lifetimes_for(tenant_id: uuid.UUID | None) -> RedisLifetimes:
    """The tenant's lifetimes: its override, else the global policy's, else the setting (field by field)."""
    return _effective(tenant_id)[1]


def eviction_for(tenant_id: uuid.UUID | None) -> MemoryEviction:
    """How the tenant's memories are evicted (its override, else the global policy's, else the settings)."""
    return _effective(tenant_id)[2]


def forget() -> None:
    """Drop this process's copies (after a policy change; the other processes follow within the cache time)."""
    _cache.clear()


@receiver(setting_changed)
def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    # Settings change under tests (override_settings); the defaults they give must not be served stale.
    if setting in _DEFAULT_SETTINGS:
        forget()
