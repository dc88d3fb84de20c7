"""Writes for tenants and API keys."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from memory_admin.errors import NotFound, ValidationFailed
from memory_admin.live import publish_on_commit, tenant_group
from tenants_app import keycache
from tenants_app.models import ApiKey, Tenant
from tenants_app.roles import Role

KEY_SCHEME = "mk"


def hash_key(raw_key: str) -> str:
    # Keys are 256-bit random secrets, so a plain SHA-256 is as strong as a slow password hash here.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def split_key(raw_key: str) -> tuple[str, str] | None:
    """`mk_<prefix>_<secret>` → (prefix, secret); None for anything else."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@transaction.atomic
def get_or_create_tenant(*, name: str) -> Tenant:
    """The tenant called `name`, created when it does not exist yet."""
    cleaned = name.strip().lower()
    if not cleaned or len(cleaned) > 100 or not all(ch.isalnum() or ch in "-_" for ch in cleaned):
        raise ValidationFailed("A tenant name is 1-100 letters, digits, '-' or '_'.", details={"name": name})
    tenant, _ = Tenant.objects.get_or_create(name=cleaned)
    return tenant


@transaction.atomic
def issue_api_key(*, tenant: Tenant, name: str, created_by: Any = None) -> tuple[ApiKey, str]:
    """Create an API key for `tenant`; returns the row and the key itself, which is never shown again."""
    prefix = secrets.token_hex(6)
    raw_key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=(name.strip() or "agent")[:100],
        prefix=prefix,
        key_hash=hash_key(raw_key),
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    _announce(api_key, "api_key.created")
    return api_key, raw_key


@transaction.atomic
def revoke_api_key(*, api_key_id: int) -> ApiKey:
    """Revoke a key at once; later requests with it get 401. Revoking twice is harmless. Unavailable (503,
    nothing changed) when Redis cannot be reached to tell every process."""
    api_key = ApiKey.objects.select_for_update().filter(pk=api_key_id).first()
    if api_key is None:
        raise NotFound("No such API key.")
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        keycache.invalidate_everywhere(must_reach_redis=True)
        _announce(api_key, "api_key.revoked")
    return api_key


def _announce(api_key: ApiKey, kind: str) -> None:
    """Tell the admins' open key lists, whoever made the change (dashboard, command, shell), after commit.

    The tenant's group; the consumer passes api_key.* messages to admins only.
    """
    publish_on_commit(
        [tenant_group(api_key.tenant_id)], {"type": kind, "tenant": str(api_key.tenant_id), "key": api_key.pk}
    )


def ensure_role_groups() -> None:
    for role in Role:
        Group.objects.get_or_create(name=role.value)
