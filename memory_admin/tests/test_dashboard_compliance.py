"""The dashboard's forget-me pages: compliance staff file, approve, and download receipts; support cannot."""

from __future__ import annotations

import pytest

from compliance_app.models import ErasureRequest
from compliance_app.tasks import purge_erasure
from conftest import World, logged_in
from langgraph_app.store import Op, run_batch
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


def _file_through_the_page(world: World) -> ErasureRequest:
    response = logged_in(world.compliance).post(
        "/compliance/erasures/",
        {"tenant": str(world.acme.tenant.pk), "user_id": "alice-123", "legal_basis": "gdpr_art_17", "identifiers": ""},
    )
    assert response.status_code == 302, response.content
    return ErasureRequest.objects.get()


def test_support_and_people_without_a_role_get_the_403_page(world: World) -> None:
    request = _file_through_the_page(world)
    for user in (world.support, world.nobody):
        client = logged_in(user)
        for path in (
            "/compliance/erasures/",
            f"/compliance/erasures/{request.pk}/",
            f"/compliance/erasures/{request.pk}/receipt/",
        ):
            assert client.get(path).status_code == 403


def test_the_filer_sees_no_approve_button_and_a_second_compliance_user_approves(world: World) -> None:
    request = _file_through_the_page(world)
    own = logged_in(world.compliance).get(f"/compliance/erasures/{request.pk}/").content.decode()
    assert 'id="approve"' not in own and "another compliance user" in own

    second = StaffFactory.create(username="ann-compliance", role="compliance")
    client = logged_in(second)
    page = client.get(f"/compliance/erasures/{request.pk}/").content.decode()
    assert 'id="approve"' in page
    assert client.post(f"/compliance/erasures/{request.pk}/", {"action": "approve"}).status_code == 302
    assert ErasureRequest.objects.get().status == "erased"


def test_a_verified_request_offers_a_receipt_without_personal_data(world: World) -> None:
    request = _file_through_the_page(world)
    second = StaffFactory.create(username="ann-compliance", role="compliance")
    logged_in(second).post(f"/compliance/erasures/{request.pk}/", {"action": "approve"})
    purge_erasure(str(request.pk))

    client = logged_in(world.compliance)
    page = client.get(f"/compliance/erasures/{request.pk}/receipt/")
    download = client.get(f"/compliance/erasures/{request.pk}/receipt/", {"format": "json"})

    assert page.status_code == 200 and "alice-123" not in page.content.decode()
    assert download["Content-Disposition"].startswith("attachment")
    assert download.json()["verification"]["clean"] is True
    assert "alice-123" not in download.content.decode()


def test_rejecting_needs_a_reason(world: World) -> None:
    request = _file_through_the_page(world)
    second = StaffFactory.create(username="ann-compliance", role="compliance")
    client = logged_in(second)
    client.post(f"/compliance/erasures/{request.pk}/", {"action": "reject", "reason": ""})
    assert ErasureRequest.objects.get().status == "pending"
    client.post(f"/compliance/erasures/{request.pk}/", {"action": "reject", "reason": "duplicate request"})
    assert ErasureRequest.objects.get().status == "rejected"


def test_a_pending_request_lists_the_store_namespaces_approval_would_delete(world: World) -> None:
    ops = [
        Op("put", {"namespace": namespace, "key": "k", "value": {"v": 1}})
        for namespace in (["users", "alice-123", "prefs"], ["alice-123"], ["users", "bob", "alice-123"])
    ]
    run_batch(tenant=world.acme.tenant, ops=ops)
    request = _file_through_the_page(world)
    client = logged_in(world.compliance)

    pending = client.get(f"/compliance/erasures/{request.pk}/").content.decode()
    logged_in(StaffFactory.create(username="ann-compliance", role="compliance")).post(
        f"/compliance/erasures/{request.pk}/", {"action": "approve"}
    )
    erased = client.get(f"/compliance/erasures/{request.pk}/").content.decode()

    listed = pending.split('id="store-namespaces"')[1].split("</ul>")[0]
    assert "<code>alice-123</code>" in listed and "<code>users / alice-123 / prefs</code>" in listed
    assert "bob" not in listed
    assert 'id="store-namespaces"' not in erased
