"""Free text typed about a person (a note, a rejection reason) does not outlive their verified erasure, and
never enters the append-only audit log, where it could neither be cleared nor let the person be verified."""

from __future__ import annotations

import json

import pytest

from compliance_app import services
from compliance_app.models import AuditEntry, ErasureRequest
from compliance_app.tasks import purge_erasure
from compliance_app.tests.people import postgres_rows_containing
from conftest import World

pytestmark = pytest.mark.django_db


def test_a_note_naming_the_person_is_cleared_once_their_erasure_is_verified(world: World) -> None:
    request = services.file_erasure(
        tenant=world.acme.tenant,
        user_id="carol-unique-1",
        identifiers=["carol@example.com"],
        legal_basis="gdpr_art_17",
        note="Carol carol@example.com asked by phone +44 1234",
        filed_by="staff:cora",
    )
    services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    purge_erasure(str(request.pk))

    request = ErasureRequest.objects.get(pk=request.pk)
    assert request.status == "verified", request.verification
    assert request.note == ""
    for text in ("carol@example.com", "carol-unique-1", "+44 1234"):
        assert postgres_rows_containing(text) == {}, text


def test_a_person_once_refused_with_a_reason_naming_them_is_verified_when_erased_later(world: World) -> None:
    reason = "lena-audit-1 has an open contract until March"
    refused = services.file_erasure(
        tenant=world.acme.tenant, user_id="lena-audit-1", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    services.reject_erasure(request_id=refused.pk, decided_by="staff:ann", reason=reason)
    assert ErasureRequest.objects.get(pk=refused.pk).rejection_reason == reason  # the row holds it meanwhile
    rejected = AuditEntry.objects.get(erasure=refused, action="rejected")
    assert rejected.details == {"reason_given": True, "reason_chars": len(reason)}

    request = services.file_erasure(
        tenant=world.acme.tenant, user_id="lena-audit-1", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    purge_erasure(str(request.pk))

    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"
    assert ErasureRequest.objects.get(pk=refused.pk).rejection_reason == ""
    assert "lena-audit-1" not in json.dumps(list(AuditEntry.objects.values_list("details", flat=True)))
    assert postgres_rows_containing("lena-audit-1") == {}


def test_a_duplicate_rejected_after_the_persons_erasure_was_verified_keeps_nothing_typed_about_them(
    world: World,
) -> None:
    first = services.file_erasure(
        tenant=world.acme.tenant, user_id="hank-dup-1", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    duplicate = services.file_erasure(
        tenant=world.acme.tenant,
        user_id="hank-dup-1",
        identifiers=["hank@example.com"],
        legal_basis="gdpr_art_17",
        note="hank-dup-1 called again",
        filed_by="staff:cora",
    )
    services.approve_erasure(request_id=first.pk, decided_by="staff:ann")
    purge_erasure(str(first.pk))
    assert ErasureRequest.objects.get(pk=first.pk).status == "verified"

    services.reject_erasure(request_id=duplicate.pk, decided_by="staff:ann", reason="duplicate of hank-dup-1's")

    rejected = ErasureRequest.objects.get(pk=duplicate.pk)
    assert rejected.status == "rejected"
    assert (rejected.user_id, rejected.identifiers, rejected.note, rejected.rejection_reason) == ("", [], "", "")
    for text in ("hank-dup-1", "hank@example.com"):
        assert postgres_rows_containing(text) == {}, text


def test_a_request_filed_after_the_persons_erasure_was_verified_keeps_its_rejection_reason_until_the_next_one(
    world: World,
) -> None:
    first = services.file_erasure(
        tenant=world.acme.tenant, user_id="ivy-back-1", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    services.approve_erasure(request_id=first.pk, decided_by="staff:ann")
    purge_erasure(str(first.pk))
    # The person came back; a request about them now is about what they hold now.
    later = services.file_erasure(
        tenant=world.acme.tenant, user_id="ivy-back-1", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )

    services.reject_erasure(request_id=later.pk, decided_by="staff:ann", reason="ivy-back-1 has an open contract")

    rejected = ErasureRequest.objects.get(pk=later.pk)
    assert (rejected.user_id, rejected.rejection_reason) == ("ivy-back-1", "ivy-back-1 has an open contract")
