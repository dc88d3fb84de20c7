"""Compliance writes lock their own request row, never the tenant's: the tenant's other writes go on meanwhile."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError, connection, transaction

from compliance_app import services
from compliance_app.tasks import build_export
from conftest import World
from tests.concurrency import at_once

pytestmark = pytest.mark.django_db(transaction=True)


def _write_the_tenant_row(tenant_id: Any) -> None:
    """What any write of the tenant itself does, on another connection, giving up after half a second."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("set local lock_timeout = '500ms'")
        cursor.execute("update tenants_app_tenant set name = name where id = %s", [tenant_id])


def test_while_an_approval_is_committing_the_tenant_row_can_still_be_written(world: World) -> None:
    request = services.file_erasure(
        tenant=world.acme.tenant, user_id="alice-lock", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )

    with transaction.atomic():
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
        (outcome,) = at_once(lambda: _write_the_tenant_row(world.acme.tenant.pk))

    assert not isinstance(outcome, OperationalError), outcome


def test_while_an_export_is_downloaded_the_tenant_row_can_still_be_written(world: World) -> None:
    export = services.file_export(
        tenant=world.acme.tenant, user_id="alice-lock", legal_basis="gdpr_art_15", filed_by="staff:cora"
    )
    build_export(str(export.pk))

    with transaction.atomic():
        services.download_export(export_id=export.pk, actor="staff:cora")
        (outcome,) = at_once(lambda: _write_the_tenant_row(world.acme.tenant.pk))

    assert not isinstance(outcome, OperationalError), outcome
