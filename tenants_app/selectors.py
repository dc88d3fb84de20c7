"""Reads for tenants and API keys."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from django.db import models
from django.db.models import QuerySet

from lifecycle_app.models import ArchiveSegment
from tenants_app.models import ApiKey, Tenant
from tenants_app.services import hash_key, split_key


def active_key_for(raw_key: str) -> ApiKey | None:
    """The active key row matching `raw_key`, with its tenant loaded; None when unknown, wrong or revoked."""
    parts = split_key(raw_key)
    if parts is None:
        return None
    api_key = ApiKey.objects.active().select_related("tenant").filter(prefix=parts[0]).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, hash_key(raw_key)):
        return None
    return api_key


def tenants() -> QuerySet[Tenant]:
    return Tenant.objects.all()


def api_keys() -> QuerySet[ApiKey]:
    return ApiKey.objects.select_related("tenant", "created_by")


@dataclass(frozen=True)
class TenantDeletion:
    """What deleting some tenants would do: rows counted per kind (the kinds a tenant owns directly; what hangs
    under those rows goes with them), the objects their archive holds in cold storage (removed after the commit,
    see services.delete_tenants), and the rows that forbid it (shown, at most `SHOWN_BLOCKERS` per kind)."""

    counts: dict[str, int]
    blockers: list[str]


SHOWN_BLOCKERS = 20
ARCHIVE_OBJECTS = "archive objects in cold storage"


def tenant_deletion(tenants: Sequence[Tenant]) -> TenantDeletion:
    """Counted, not collected: a tenant's sessions may hold millions of events, which the admin's own
    confirmation page would load one object at a time."""
    counts = {str(Tenant._meta.verbose_name_plural): len(tenants)}
    blockers: list[str] = []
    for relation in Tenant._meta.related_objects:
        model = cast(type[models.Model], relation.related_model)
        if relation.many_to_many or model._meta.proxy:
            continue
        rows = model._base_manager.filter(**{f"{relation.field.name}__in": tenants})
        if relation.on_delete is models.PROTECT:
            blocking = list(rows.order_by("pk")[: SHOWN_BLOCKERS + 1])
            blockers += [f"{model._meta.verbose_name}: {row}" for row in blocking[:SHOWN_BLOCKERS]]
            if len(blocking) > SHOWN_BLOCKERS:
                blockers.append(f"and {rows.count() - SHOWN_BLOCKERS} more {model._meta.verbose_name_plural}")
        elif count := rows.count():
            counts[str(model._meta.verbose_name_plural)] = count
    # Outside Postgres, so not among the kinds above: one object per recorded segment.
    if archived := ArchiveSegment.objects.filter(tenant__in=tenants).count():
        counts[ARCHIVE_OBJECTS] = archived
    return TenantDeletion(counts=counts, blockers=blockers)
