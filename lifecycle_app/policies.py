"""Which retention policy applies where: settings give the defaults, the global row overrides them, a tenant's
row overrides the global one, field by field (NULL inherits)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from lifecycle_app.models import RetentionPolicy
from tenants_app.models import Tenant

# Policy field -> the setting that gives its default.
DEFAULTS: dict[str, str] = {
    "session_archival_enabled": "SESSION_ARCHIVAL_ENABLED",
    "session_archive_after_days": "SESSION_ARCHIVE_AFTER_DAYS",
    "event_archival_enabled": "EVENT_ARCHIVAL_ENABLED",
    "event_retention_days": "EVENT_RETENTION_DAYS",
    "checkpoint_retention_enabled": "CHECKPOINT_RETENTION_ENABLED",
    "checkpoint_retention_days": "CHECKPOINT_RETENTION_DAYS",
    "checkpoint_keep_latest": "CHECKPOINT_KEEP_LATEST",
    "memory_eviction_enabled": "MEMORY_EVICTION_ENABLED",
    "memory_eviction_threshold": "MEMORY_EVICTION_THRESHOLD",
    "memory_eviction_grace_days": "MEMORY_EVICTION_GRACE_DAYS",
    "context_ttl_seconds": "CONTEXT_TTL_SECONDS",
    "tool_state_ttl_seconds": "TOOL_STATE_TTL_SECONDS",
    "idempotency_ttl_seconds": "IDEMPOTENCY_TTL_SECONDS",
}


@dataclass(frozen=True)
class EffectivePolicy:
    session_archival_enabled: bool
    session_archive_after_days: int
    event_archival_enabled: bool
    event_retention_days: int
    checkpoint_retention_enabled: bool
    checkpoint_retention_days: int
    checkpoint_keep_latest: int
    memory_eviction_enabled: bool
    memory_eviction_threshold: float
    memory_eviction_grace_days: int
    context_ttl_seconds: int
    tool_state_ttl_seconds: int
    idempotency_ttl_seconds: int

    def session_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.session_archive_after_days)

    def event_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.event_retention_days)

    def checkpoint_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.checkpoint_retention_days)

    def grace_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.memory_eviction_grace_days)


def settings_policy() -> EffectivePolicy:
    return EffectivePolicy(**{name: getattr(settings, setting) for name, setting in DEFAULTS.items()})


def _overlay(base: EffectivePolicy, row: RetentionPolicy | None) -> EffectivePolicy:
    if row is None:
        return base
    values: dict[str, Any] = {}
    for item in fields(EffectivePolicy):
        own = getattr(row, item.name)
        values[item.name] = getattr(base, item.name) if own is None else own
    return EffectivePolicy(**values)


def global_policy() -> EffectivePolicy:
    return _overlay(settings_policy(), RetentionPolicy.objects.filter(tenant__isnull=True).first())


def policy_for(tenant: Tenant) -> EffectivePolicy:
    return _overlay(global_policy(), RetentionPolicy.objects.filter(tenant=tenant).first())


@dataclass(frozen=True)
class PolicyGroup:
    """Tenants that share one effective policy: those without an override, or one tenant with its own."""

    label: str
    policy: EffectivePolicy
    tenant_ids: list[uuid.UUID]
    tenant: Tenant | None = None


def policy_groups() -> list[PolicyGroup]:
    """The default group first (every tenant without an override), then one group per overriding tenant."""
    base = global_policy()
    overrides = list(RetentionPolicy.objects.filter(tenant__isnull=False).select_related("tenant").order_by("tenant"))
    overridden = {row.tenant_id for row in overrides}
    others = [pk for pk in Tenant.objects.order_by("pk").values_list("pk", flat=True) if pk not in overridden]
    groups = [PolicyGroup(label="Tenants without an override", policy=base, tenant_ids=others)]
    for row in overrides:
        assert row.tenant is not None
        groups.append(
            PolicyGroup(
                label=row.tenant.name, policy=_overlay(base, row), tenant_ids=[row.tenant.pk], tenant=row.tenant
            )
        )
    return groups
