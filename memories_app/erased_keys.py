"""The Idempotency-Keys of memory creates whose memories an erasure purged (ErasedRequestKey).

A memory create keeps its key on the rows it stored, so that a retry finds them whatever Redis lost, and while
the owner's erasure is approved but not yet purged that retry is a 410. The purge deletes the rows, and with
them what refused the retry's INSERT: it keeps their keys here first, for the tenant's idempotency lifetime, so
that the retry stays a 410 instead of storing the erased person's memories again. A key is kept as a keyed hash
(a client may name the person in it), scoped like the key itself by tenant and endpoint. (While Redis keeps the
request's record, the erased marker that replaced it answers the retry first, see api.idempotency; this is
what answers once Redis lost it.)

A retry whose rows are all gone cannot be told from a new request by its INSERT, and looking here before every
keyed create would cost each one a database round trip. Each process remembers instead, per tenant, whether
the tenant has any such key, stamped with the cache epoch (tenants_app.keycache), which a keyed create reads
just before it checks and again after its INSERT (two Redis reads): the purge replaces the epoch once the keys
are kept and before the rows go, so no process answers from what it saw before, and a create the purge
overtook between the two reads looks again and takes back what it stored. Tenants with no erasure in the
idempotency lifetime, nearly all of them nearly always, never look. Without Redis there is no epoch, and every
keyed create looks.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from lifecycle_app.lifetimes import lifetimes_for
from memories_app.models import ErasedRequestKey, Memory
from tenants_app.models import Tenant

# Even under one epoch the answer is read again now and then: kept keys expire, and then nothing need be looked up.
ENTRY_SECONDS = 60.0
MAX_ENTRIES = 10_000

# tenant -> (epoch, whether it holds kept keys, when the answer is read again)
_held: dict[uuid.UUID, tuple[bytes, bool, float]] = {}
_lock = threading.Lock()


def request_key(stored: str) -> str:
    """The request's key (api.idempotency.stored_key) of a memory's `idempotency_key`, "<key>:<index>"."""
    return stored.rpartition(":")[0]


def digest(tenant_id: uuid.UUID, key: str) -> str:
    return hmac.new(
        settings.SUBJECT_HASH_KEY, f"erased-request-key\0{tenant_id}\0{key}".encode(), hashlib.sha256
    ).hexdigest()


def is_erased(tenant_id: uuid.UUID, key: str, *, epoch: bytes | None = None, cached: bool = False) -> bool:
    """Whether an erasure purged memories stored with this request key (api.idempotency.stored_key) lately.

    `cached`, for a create about to store: no lookup while this process knows the tenant has no such key, as of
    `epoch` (the keycache epoch read just before, keycache.fresh_epoch: the request's own epoch may predate a
    purge that ran while it embedded its texts).
    """
    if cached and not _holds_any(tenant_id, epoch):
        return False
    return ErasedRequestKey.objects.filter(
        tenant_id=tenant_id, digest=digest(tenant_id, key), expires_at__gt=timezone.now()
    ).exists()


def _holds_any(tenant_id: uuid.UUID, epoch: bytes | None) -> bool:
    now = time.monotonic()
    seen = _held.get(tenant_id)
    if epoch is not None and seen is not None and seen[0] == epoch and seen[2] > now:
        return seen[1]
    held = ErasedRequestKey.objects.filter(tenant_id=tenant_id, expires_at__gt=timezone.now()).exists()
    if epoch is not None:
        with _lock:
            if len(_held) >= MAX_ENTRIES:
                _held.clear()
            _held[tenant_id] = (epoch, held, now + ENTRY_SECONDS)
    return held


# Memories whose keys are read per query while an erasure's purge keeps them.
_ERASED_KEYS_BATCH = 5000


def keep_erased_request_keys(*, tenant: Tenant, memory_ids: Sequence[Any]) -> int:
    """Keep the request keys these memories were stored with, for the tenant's idempotency lifetime, before an
    erasure's purge deletes them: a retry of one of those requests is then a 410 instead of storing them again
    (see above). Returns how many requests stored them with a key.
    """
    expires_at = timezone.now() + timedelta(seconds=lifetimes_for(tenant.pk).idempotency_seconds)
    keys: set[str] = set()
    for start in range(0, len(memory_ids), _ERASED_KEYS_BATCH):
        stored = Memory.objects.filter(
            tenant=tenant, pk__in=memory_ids[start : start + _ERASED_KEYS_BATCH], idempotency_key__isnull=False
        ).values_list("idempotency_key", flat=True)
        keys.update(request_key(key) for key in stored if key is not None)
    ErasedRequestKey.objects.bulk_create(
        [ErasedRequestKey(tenant=tenant, digest=digest(tenant.pk, key), expires_at=expires_at) for key in keys],
        ignore_conflicts=True,
        batch_size=_ERASED_KEYS_BATCH,
    )
    return len(keys)


def drop_expired_erased_request_keys() -> int:
    """Forget the kept keys past the idempotency lifetime (no retry of theirs is expected any more)."""
    deleted, _ = ErasedRequestKey.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
