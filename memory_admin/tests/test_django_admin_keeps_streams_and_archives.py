"""The Django admin shows events and archive records but deletes neither: a deleted event leaves a gap that no
state rebuild gets past, and a deleted archive record leaves its object in cold storage with nothing pointing
to it (and the archived versions unreadable). Both leave with their session's erasure or their tenant."""

from __future__ import annotations

import pytest
from django.test import Client

from conftest import World
from lifecycle_app.models import ArchiveKind, ArchiveSegment
from sessions_app.models import AgentSession, Event

pytestmark = pytest.mark.django_db


def test_an_event_cannot_be_deleted_in_the_django_admin_one_by_one_or_in_bulk(
    world: World, superuser_client: Client
) -> None:
    client = world.acme.client
    assert client.post("/api/v1/sessions", {"id": "s1", "user_id": "u1"}, format="json").status_code == 201
    event = {"type": "NODE_TRANSITION", "payload": {"node": "plan"}}
    assert client.post("/api/v1/sessions/s1/events", event, format="json").status_code == 201
    row = Event.objects.get(session__session_id="s1", version=1)

    one = superuser_client.post(f"/django-admin/sessions_app/event/{row.pk}/delete/", {"post": "yes"})
    bulk = superuser_client.post(
        "/django-admin/sessions_app/event/", {"action": "delete_selected", "post": "yes", "_selected_action": [row.pk]}
    )

    assert one.status_code == 403
    assert bulk.status_code in (200, 302)  # the action is not offered: "No action selected"
    assert Event.objects.filter(pk=row.pk).exists()


def test_an_archive_record_cannot_be_deleted_in_the_django_admin_one_by_one_or_in_bulk(
    world: World, superuser_client: Client
) -> None:
    session = AgentSession.objects.create(tenant=world.acme.tenant, session_id="s1", user_id="u1")
    segment = ArchiveSegment.objects.create(
        tenant=world.acme.tenant,
        session=session,
        kind=ArchiveKind.EVENTS,
        from_version=1,
        to_version=10,
        storage_key=f"{world.acme.tenant.pk}/{session.pk}/events-1-10.json.gz",
        stored_bytes=100,
        sha256="0" * 64,
    )

    one = superuser_client.post(f"/django-admin/lifecycle_app/archivesegment/{segment.pk}/delete/", {"post": "yes"})
    bulk = superuser_client.post(
        "/django-admin/lifecycle_app/archivesegment/",
        {"action": "delete_selected", "post": "yes", "_selected_action": [segment.pk]},
    )

    assert one.status_code == 403
    assert bulk.status_code in (200, 302)
    assert ArchiveSegment.objects.filter(pk=segment.pk).exists()
