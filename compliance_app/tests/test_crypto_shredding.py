"""Per-person data keys: payloads are encrypted at rest, and destroying the key makes them unreadable."""

from __future__ import annotations

import pytest
from django.db import connection

from compliance_app.keys import destroy_keys
from memory_admin.codec import COMPRESSED_JSON, PLAIN_JSON, decode_payload, encode_payload, is_encrypted
from memory_admin.errors import Erased, IntegrityFailure
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_payloads_are_encrypted_with_a_key_of_their_person() -> None:
    tenant = TenantFactory.create()
    blob = encode_payload({"secret": "alice's diagnosis"}, tenant_id=tenant.pk, user_id="alice")

    assert is_encrypted(blob)
    assert b"diagnosis" not in blob
    assert decode_payload(blob, tenant_id=tenant.pk, user_id="alice") == {"secret": "alice's diagnosis"}


def test_two_people_get_different_keys() -> None:
    tenant = TenantFactory.create()
    alice = encode_payload("same", tenant_id=tenant.pk, user_id="alice")
    bob = encode_payload("same", tenant_id=tenant.pk, user_id="bob")
    assert alice[2:18] != bob[2:18]  # the key ids


def test_destroying_the_key_makes_every_copy_unreadable() -> None:
    tenant = TenantFactory.create()
    blob = encode_payload({"secret": "x"}, tenant_id=tenant.pk, user_id="alice")
    backup = bytes(blob)

    assert destroy_keys(tenant_id=tenant.pk, user_id="alice") == 1

    with pytest.raises(Erased):
        decode_payload(backup, tenant_id=tenant.pk, user_id="alice")


def test_a_tampered_ciphertext_is_an_integrity_failure() -> None:
    tenant = TenantFactory.create()
    blob = bytearray(encode_payload({"secret": "x"}, tenant_id=tenant.pk, user_id="alice"))
    blob[-1] ^= 0xFF
    with pytest.raises(IntegrityFailure):
        decode_payload(bytes(blob), tenant_id=tenant.pk, user_id="alice")


def test_rows_written_before_encryption_stay_readable() -> None:
    legacy_plain = PLAIN_JSON + b'{"old":true}'
    import zlib

    legacy_compressed = COMPRESSED_JSON + zlib.compress(b'{"old":"compressed"}')
    assert decode_payload(legacy_plain, tenant_id="t", user_id="u") == {"old": True}
    assert decode_payload(legacy_compressed, tenant_id="t", user_id="u") == {"old": "compressed"}


def test_data_keys_are_stored_wrapped_and_named_by_a_keyed_hash() -> None:
    tenant = TenantFactory.create()
    encode_payload("x", tenant_id=tenant.pk, user_id="alice@example.com")
    with connection.cursor() as cursor:
        cursor.execute("select subject, wrapped_key from compliance_app_personkey")
        subject, wrapped = cursor.fetchone()
    assert "alice" not in subject
    assert len(bytes(wrapped)) == 12 + 32 + 16  # nonce, key, tag
