"""Reads for tenants and API keys."""

from __future__ import annotations

import hmac

from django.db.models import QuerySet

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
