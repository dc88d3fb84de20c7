"""How long the hot layer keeps a tenant's data: the Redis lifetimes of its effective retention policy.

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
_DEFAULT_SETTINGS = frozenset(setting for _, setting in _FIELDS.values()) | {"LIFETIMES_CACHE_SECONDS"}
_cache: dict[uuid.UUID | None, tuple[float, RedisLifetimes]] = {}


def lifetimes_for(tenant_id: uuid.UUID | None) -> RedisLifetimes:
    """The tenant's lifetimes: its override, else the global policy's, else the setting (field by field)."""
    now = time.monotonic()
    hit = _cache.get(tenant_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    rows = {
        row.tenant_id: row
        for row in RetentionPolicy.objects.filter(Q(tenant__isnull=True) | Q(tenant_id=tenant_id)).only(
            "tenant_id", *(column for column, _ in _FIELDS.values())
        )
    }
    values = {}
    for name, (column, setting) in _FIELDS.items():
        chosen = None
        for row in (rows.get(tenant_id), rows.get(None)):
            if row is not None and getattr(row, column) is not None:
                chosen = getattr(row, column)
                break
        values[name] = int(getattr(settings, setting) if chosen is None else chosen)
    lifetimes = RedisLifetimes(**values)
    _cache[tenant_id] = (now + settings.LIFETIMES_CACHE_SECONDS, lifetimes)
    return lifetimes


def forget() -> None:
    """Drop this process's copies (after a policy change; the other processes follow within the cache time)."""
    _cache.clear()


@receiver(setting_changed)
def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    # Settings change under tests (override_settings); the defaults they give must not be served stale.
    if setting in _DEFAULT_SETTINGS:
        forget()
