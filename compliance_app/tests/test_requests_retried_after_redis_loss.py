"""Erasure and export requests filed with an Idempotency-Key are filed once, also when a retry comes after Redis
lost the key's record of the first answer (written after the commit: a worker killed between the two leaves only
Postgres knowing the request was filed)."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app.models import AuditEntry, ErasureRequest, ExportRequest
from conftest import World
from memory_admin.health import redis_client

pytestmark = pytest.mark.django_db

ERASURE = {
    "user_id": "lena-retry",
    "legal_basis": "gdpr_art_17",
    "identifiers": ["lena@example.com"],
    "note": "ticket 7",
}
EXPORT = {"user_id": "lena-retry", "legal_basis": "gdpr_art_15"}


def _post(world: World, path: str, body: dict[str, Any], key: str) -> Any:
    return world.acme.client.post(f"/api/v1/{path}", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_an_erasure_request_retried_after_redis_lost_its_record_is_filed_once(world: World) -> None:
    first = _post(world, "erasure-requests", ERASURE, "e-1")

    redis_client().flushall()
    retry = _post(world, "erasure-requests", ERASURE, "e-1")

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert ErasureRequest.objects.count() == 1
    assert AuditEntry.objects.filter(action="filed").count() == 1


def test_an_export_request_retried_after_redis_lost_its_record_is_filed_once(world: World) -> None:
    first = _post(world, "export-requests", EXPORT, "x-1")

    redis_client().flushall()
    retry = _post(world, "export-requests", EXPORT, "x-1")

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert ExportRequest.objects.count() == 1
    assert AuditEntry.objects.filter(action="export_filed").count() == 1


def test_the_same_key_for_another_request_is_a_422_after_redis_lost_its_record(world: World) -> None:
    _post(world, "erasure-requests", ERASURE, "e-2")
    _post(world, "export-requests", EXPORT, "x-2")

    redis_client().flushall()
    answers = [
        _post(world, "erasure-requests", {**ERASURE, "user_id": "someone-else"}, "e-2"),
        _post(world, "erasure-requests", {**ERASURE, "legal_basis": "ccpa_delete"}, "e-2"),
        _post(world, "erasure-requests", {**ERASURE, "note": "another ticket"}, "e-2"),
        _post(world, "erasure-requests", {**ERASURE, "identifiers": ["lena@example.com", "+47 555 0100"]}, "e-2"),
        _post(world, "export-requests", {**EXPORT, "user_id": "someone-else"}, "x-2"),
        _post(world, "export-requests", {**EXPORT, "legal_basis": "gdpr_art_20"}, "x-2"),
    ]

    assert [answer.status_code for answer in answers] == [422] * 6
    assert answers[0].json()["error"]["details"] == {"header": "Idempotency-Key"}
    assert (ErasureRequest.objects.count(), ExportRequest.objects.count()) == (1, 1)


def test_an_erasure_request_scrubbed_since_is_still_found_by_its_retry(world: World) -> None:
    first = _post(world, "erasure-requests", ERASURE, "e-3").json()
    # What a verified erasure keeps of its request: the keyed hash, not the person's identifiers or the note.
    ErasureRequest.objects.filter(pk=first["id"]).update(user_id="", identifiers=[], note="")

    redis_client().flushall()
    retry = _post(world, "erasure-requests", ERASURE, "e-3")

    assert retry.status_code == 201
    assert retry.json()["id"] == first["id"]
    assert ErasureRequest.objects.count() == 1
