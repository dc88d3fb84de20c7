"""The compliance pages answer a well-formed id of no request with the 404 page, never a 500."""

from __future__ import annotations

import uuid

import pytest

from compliance_app.models import ErasureRequest
from conftest import World, logged_in

pytestmark = pytest.mark.django_db

UNKNOWN = uuid.uuid4()


@pytest.mark.parametrize(
    "path",
    [
        f"/compliance/erasures/{UNKNOWN}/",
        f"/compliance/erasures/{UNKNOWN}/?format=json",
        f"/compliance/erasures/{UNKNOWN}/receipt/",
        f"/compliance/erasures/{UNKNOWN}/receipt/?format=json",
        f"/compliance/exports/{UNKNOWN}/",
        f"/compliance/exports/{UNKNOWN}/?format=json",
    ],
)
def test_a_page_of_a_request_that_does_not_exist_is_a_404(world: World, path: str) -> None:
    assert logged_in(world.compliance).get(path).status_code == 404


def test_approving_a_request_that_does_not_exist_is_a_404_and_changes_nothing(world: World) -> None:
    response = logged_in(world.compliance).post(f"/compliance/erasures/{UNKNOWN}/", {"action": "approve"})

    assert response.status_code == 404
    assert not ErasureRequest.objects.exists()
