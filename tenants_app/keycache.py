"""A per-process cache of verified API keys, invalidated on every node at once through a Redis epoch.

Looking a key up in Postgres on every request costs more than the rest of a hot request. Each process keeps
the keys it verified, stamped with the epoch (a random token in Redis) current at the time; revoking a key
replaces the epoch, so every process drops its cache on its next request. A flushed Redis gets a new random
epoch, which has the same effect. When Redis is unreachable the cache is bypassed and Postgres answers.

The same epoch stamps what processes remember about sessions (sessions_app.identity) and the data keys they
seal payloads with (compliance_app.keys): erasing a person replaces it too, so no process goes on writing as
that person, or sealing with their destroyed key, from memory. Every API request reads the epoch
before it does anything (`check`), and `current_epoch()` is the one the current request read.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.db import transaction

from memory_admin.api.throttling import count_request
from memory_admin.errors import Unavailable
from memory_admin.health import redis_client
from memory_admin.redis_wire import Batch
from tenants_app.models import ApiKey

EPOCH_KEY = "mem:apikeys:epoch"
# Even with a stable epoch an entry is re-read now and then (last-used time, tenant renames).
ENTRY_SECONDS = 60.0
MAX_ENTRIES = 10_000


@dataclass
class _Entry:
    api_key: ApiKey
    epoch: bytes
    expires: float


_entries: dict[str, _Entry] = {}
_lock = threading.Lock()


# Per thread: what one request remembers must carry the epoch that request read, not one that another
# thread read later (which could postdate an erasure this request's lookup did not see).
_read = threading.local()


def current_epoch() -> bytes | None:
    """The epoch this thread's request read (None outside a request, or while Redis cannot say)."""
    epoch: bytes | None = getattr(_read, "epoch", None)
    return epoch


# Work outside a request (a Celery task) reads the epoch itself, at most this often per thread.
BACKGROUND_EPOCH_SECONDS = 1.0


def fresh_epoch() -> bytes | None:
    """The epoch as Redis holds it now (one read); None while Redis cannot say."""
    try:
        (read,) = Batch().get(EPOCH_KEY).execute()
        return _established(read)
    except redis.RedisError:
        return None


def background_epoch() -> bytes | None:
    """The epoch for work outside a request (which no `check` stamped): read from Redis at most once per
    BACKGROUND_EPOCH_SECONDS on this thread; None while Redis cannot say."""
    now = time.monotonic()
    seen: tuple[bytes | None, float] | None = getattr(_read, "background", None)
    if seen is not None and now - seen[1] < BACKGROUND_EPOCH_SECONDS:
        return seen[0]
    epoch: bytes | None
    try:
        (read,) = Batch().get(EPOCH_KEY).execute()
        epoch = _established(read)
    except redis.RedisError:
        epoch = None
    _read.background = (epoch, now)
    return epoch


def _established(epoch: Any) -> bytes:
    """The epoch as read, or the first one when there was none yet (raises redis.RedisError)."""
    if epoch is None:
        _, epoch = Batch().set(EPOCH_KEY, secrets.token_hex(8), nx=True).get(EPOCH_KEY).execute()
    return epoch if isinstance(epoch, bytes) else str(epoch).encode()


def check(digest: str) -> tuple[bytes | None, int | None]:
    """One round trip per request: the epoch now in force, and this key's request count in the rate window.

    Either is None when Redis cannot say. The count is kept per key digest, so it exists before the key is
    looked up and also slows down guessing.
    """
    try:
        batch = Batch().get(EPOCH_KEY)
        count_request(batch, digest[:32])
        epoch, count, _ = batch.execute()
        epoch = _established(epoch)
    except redis.RedisError:
        _set_epoch(None)
        return None, None
    _set_epoch(epoch)
    return epoch, int(count)


def _set_epoch(epoch: bytes | None) -> None:
    _read.epoch = epoch


def cached(digest: str, epoch: bytes | None) -> ApiKey | None:
    if epoch is None:
        return None
    entry = _entries.get(digest)
    if entry is None or entry.epoch != epoch or entry.expires < time.monotonic():
        return None
    return entry.api_key


def remember(digest: str, api_key: ApiKey, epoch: bytes | None) -> None:
    if epoch is None:
        return
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[digest] = _Entry(api_key=api_key, epoch=epoch, expires=time.monotonic() + ENTRY_SECONDS)


def invalidate_everywhere(*, must_reach_redis: bool = False) -> None:
    """Make every process forget the keys and sessions it remembers (after a revocation or an erasure commits).

    `must_reach_redis` (a revocation): the epoch is replaced right away as well, and Unavailable (503) is raised
    when Redis cannot be reached, so the caller's transaction rolls back and it can retry. Otherwise a key
    revoked while this process could not reach Redis would go on working in every process that cached it,
    once they read the unchanged epoch again. The epoch is replaced again after commit, so what a process
    cached in between is dropped too.
    """
    with _lock:
        _entries.clear()
    if must_reach_redis:
        try:
            redis_client().set(EPOCH_KEY, secrets.token_hex(8))
        except redis.RedisError:
            raise Unavailable("Redis cannot be reached to make every process forget the key; try again.") from None

    def bump() -> None:
        # Without Redis no process can use its cache either (see cached()), so nothing is served stale.
        with contextlib.suppress(redis.RedisError):
            redis_client().set(EPOCH_KEY, secrets.token_hex(8))

    transaction.on_commit(bump)
