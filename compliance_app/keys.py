"""Per-person data keys under envelope encryption, and the keyed hash that names a person without their id.

Each person (tenant + user id) gets a random 256-bit AES-GCM data key on their first write. It is stored
wrapped under the master key (ENCRYPTION_MASTER_KEY, or one derived from SECRET_KEY) and cached, unwrapped,
in each process for a minute. Destroying the key at erasure makes every payload encrypted with it — in the
database, its backups and replicas, and the archives — unreadable.

A cached key is stamped with the cache epoch its request read (tenants_app.keycache), and seals new payloads
only while that epoch stays: erasing a person replaces it, so no process seals a returning person's new data
with their destroyed key (unreadable once the copy expired). Work outside a request (a Celery task) reads the
epoch itself, at most once a second per thread; while Redis cannot say, the key is looked up in Postgres for
every batch sealed. Reads of what was sealed still use the copy until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance_app.models import PersonKey
from tenants_app.keycache import background_epoch, current_epoch

CACHE_SECONDS = 60.0
_NONCE = 12


def subject_of(tenant_id: Any, user_id: str) -> str:
    """The keyed hash that stands for a person in keys, audit entries and receipts."""
    return hmac.new(settings.SUBJECT_HASH_KEY, f"{tenant_id}\0{user_id}".encode(), hashlib.sha256).hexdigest()


def _master() -> AESGCM:
    return AESGCM(settings.ENCRYPTION_MASTER_KEY)


def _wrap(data_key: bytes, key_id: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + _master().encrypt(nonce, data_key, key_id)


def _unwrap(wrapped: bytes, key_id: bytes) -> bytes:
    return _master().decrypt(wrapped[:_NONCE], wrapped[_NONCE:], key_id)


class PersonKeyRing:
    """The codec's key ring (memory_admin.codec.KeyRing), backed by PersonKey rows."""

    def __init__(self) -> None:
        # Per person: key id, cipher, the epoch of the request that looked it up, expiry.
        self._by_person: dict[tuple[str, str], tuple[bytes, AESGCM, bytes | None, float]] = {}
        self._by_id: dict[bytes, tuple[AESGCM, float]] = {}
        self._lock = threading.Lock()

    def key_for(self, tenant_id: Any, user_id: str) -> tuple[bytes, AESGCM]:
        person = (str(tenant_id), user_id)
        epoch = current_epoch() or background_epoch()
        cached = self._by_person.get(person)
        if cached is not None and epoch is not None and cached[2] == epoch and cached[3] > time.monotonic():
            return cached[0], cached[1]
        row = self._live_key(tenant_id, user_id)
        key_id = row.pk.bytes
        assert row.wrapped_key is not None  # a live key always has its wrapped material
        cipher = AESGCM(_unwrap(bytes(row.wrapped_key), key_id))
        # Cache only what is committed: a key created in a transaction that rolls back must be forgotten
        # with it, or later payloads would be encrypted under a key that no longer exists.
        transaction.on_commit(lambda: self._remember(person, key_id, cipher, epoch))
        return key_id, cipher

    def _remember(self, person: tuple[str, str], key_id: bytes, cipher: AESGCM, epoch: bytes | None) -> None:
        with self._lock:
            expires = time.monotonic() + CACHE_SECONDS
            self._by_person[person] = (key_id, cipher, epoch, expires)
            self._by_id[key_id] = (cipher, expires)

    def cipher_by_id(self, key_id: bytes) -> AESGCM | None:
        cached = self._by_id.get(key_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        row = PersonKey.objects.filter(pk=uuid.UUID(bytes=key_id), destroyed_at__isnull=True).first()
        if row is None or row.wrapped_key is None:
            return None
        cipher = AESGCM(_unwrap(bytes(row.wrapped_key), key_id))
        with self._lock:
            self._by_id[key_id] = (cipher, time.monotonic() + CACHE_SECONDS)
        return cipher

    def forget(self) -> None:
        with self._lock:
            self._by_person.clear()
            self._by_id.clear()

    def _live_key(self, tenant_id: Any, user_id: str) -> PersonKey:
        subject = subject_of(tenant_id, user_id)
        row = PersonKey.objects.filter(tenant_id=tenant_id, subject=subject, destroyed_at__isnull=True).first()
        if row is not None:
            return row
        key_id = uuid.uuid4()
        try:
            with transaction.atomic():
                return PersonKey.objects.create(
                    id=key_id,
                    tenant_id=tenant_id,
                    subject=subject,
                    wrapped_key=_wrap(AESGCM.generate_key(bit_length=256), key_id.bytes),
                )
        except IntegrityError:  # another process created it first
            return PersonKey.objects.get(tenant_id=tenant_id, subject=subject, destroyed_at__isnull=True)


KEYRING = PersonKeyRing()


def destroy_keys(*, tenant_id: Any, user_id: str) -> int:
    """Destroy the person's data keys (inside the caller's transaction); returns how many were destroyed."""
    destroyed = PersonKey.objects.filter(
        tenant_id=tenant_id, subject=subject_of(tenant_id, user_id), destroyed_at__isnull=True
    ).update(wrapped_key=None, destroyed_at=timezone.now())
    KEYRING.forget()
    transaction.on_commit(KEYRING.forget)
    return destroyed


def key_ids_of(*, tenant_id: Any, user_id: str) -> list[Any]:
    return list(
        PersonKey.objects.filter(tenant_id=tenant_id, subject=subject_of(tenant_id, user_id)).values_list(
            "pk", flat=True
        )
    )
