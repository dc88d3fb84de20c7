"""Writes for tenants and API keys."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import redis
import structlog
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from compliance_app.scope import redis_hot_keys as sessions_hot_keys
from lifecycle_app.services import delete_tenant_archives
from memory_admin.errors import Conflict, NotFound, ValidationFailed
from memory_admin.health import redis_client
from memory_admin.live import publish_on_commit, tenant_group
from sessions_app.models import AgentSession
from tenants_app import keycache
from tenants_app.models import ApiKey, Tenant, normalise_tenant_name
from tenants_app.roles import Role

logger = structlog.get_logger("memory.tenants")

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


def _tenant_name(name: str) -> str:
    """`name` as tenants are stored (models.normalise_tenant_name); ValidationFailed when it cannot be one."""
    cleaned = normalise_tenant_name(name)
    if not cleaned or len(cleaned) > 100 or not all(ch.isalnum() or ch in "-_" for ch in cleaned):
        raise ValidationFailed("A tenant name is 1-100 letters, digits, '-' or '_'.", details={"name": name})
    return cleaned


@transaction.atomic
def get_or_create_tenant(*, name: str) -> Tenant:
    """The tenant called `name` in any letter case, created when it does not exist yet."""
    tenant, _ = Tenant.objects.get_or_create(name=_tenant_name(name))
    return tenant


@transaction.atomic
def create_tenant(*, name: str) -> Tenant:
    """A new tenant called `name` (stored in lower case). ValidationFailed for a name that cannot be one;
    Conflict when a tenant of that name exists in any letter case: naming a new tenant never opens another's."""
    cleaned = _tenant_name(name)
    exists = Conflict(f"A tenant named {cleaned!r} already exists.", details={"name": cleaned})
    if Tenant.objects.filter(name__iexact=cleaned).exists():
        raise exists
    try:
        with transaction.atomic():
            return Tenant.objects.create(name=cleaned)
    except IntegrityError:  # created meanwhile by someone else
        raise exists from None


@transaction.atomic
def delete_tenants(*, tenants: QuerySet[Tenant]) -> None:
    """Delete these tenants with everything of theirs. ProtectedError, nothing deleted, for one that filed an
    erasure or export request: those and their audit trail are kept (the admin lists them and refuses).

    Once committed, every process forgets their keys, and their data in Redis goes too rather than waiting out
    its TTLs: their sessions' context windows and tool states (the erasure's sweep) and their idempotency
    records, which hold responses. So does their archive in cold storage (operation names and keys, event
    idempotency keys in plain text), recorded for removal with the deletion: when storage cannot be reached
    then, the deletion stands and the next session archival run removes it
    (lifecycle_app.services.delete_tenant_archives).
    """
    # Locked: a session being created for one of them waits, then fails, instead of escaping the sweep.
    locked = Tenant.objects.select_for_update().filter(pk__in=tenants.values("pk"))
    tenant_pks = list(locked.values_list("pk", flat=True))
    session_pks = list(AgentSession.all_objects.filter(tenant_id__in=tenant_pks).values_list("pk", flat=True))
    Tenant.objects.filter(pk__in=tenant_pks).delete()
    # As for a revocation: Unavailable, nothing deleted, when Redis cannot tell every process to forget the keys.
    keycache.invalidate_everywhere(must_reach_redis=True)
    delete_tenant_archives(tenant_ids=tenant_pks)
    transaction.on_commit(lambda: _forget_in_redis(tenant_pks, session_pks), robust=True)


@transaction.atomic
def delete_api_keys(*, api_keys: QuerySet[ApiKey]) -> int:
    """Delete these keys; every process forgets them at once. Unavailable (503), nothing deleted, when Redis
    cannot be reached to tell them, as for a revocation: a deleted key would go on working wherever it is
    cached until the cache entry ran out."""
    deleted, _ = ApiKey.objects.filter(pk__in=api_keys.values("pk")).delete()
    keycache.invalidate_everywhere(must_reach_redis=True)
    return deleted


def _forget_in_redis(tenant_pks: list[Any], session_pks: list[Any]) -> None:
    try:
        client = redis_client()
        keys = sessions_hot_keys(session_pks)
        for pk in tenant_pks:
            keys += [key.decode() for key in client.scan_iter(match=f"mem:idem:{pk}:*", count=1000)]
        removed = sum(int(client.delete(*keys[at : at + 1000])) for at in range(0, len(keys), 1000))
    except redis.RedisError as exc:  # what is left expires with its TTL
        logger.warning("deleted_tenants_redis_keys_left", tenants=len(tenant_pks), error=type(exc).__name__)
    else:
        logger.info("deleted_tenants_redis_keys_removed", tenants=len(tenant_pks), keys=removed)


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
