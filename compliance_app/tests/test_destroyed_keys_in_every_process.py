"""A destroyed data key is forgotten by every process: none goes on sealing a returning person's new data with
it (which would make that data unreadable once its cached copy expired), whether or not Redis can say so."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from compliance_app import services
from compliance_app.keys import PersonKeyRing
from compliance_app.models import ErasureRequest, PersonKey
from compliance_app.tasks import purge_erasure
from conftest import World
from sessions_app.models import Event
from tenants_app import keycache
from tests.servers import running, web_server

IVY = "ivy-returns-1"


def _key_id(payload: bytes | memoryview) -> uuid.UUID:
    return uuid.UUID(bytes=bytes(payload)[2:18])  # tag, flags, then the key id (memory_admin.codec)


def _erase(world: World) -> str:
    request = services.file_erasure(
        tenant=world.acme.tenant, user_id=IVY, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    purge_erasure(str(request.pk))
    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"
    return str(request.pk)


@pytest.mark.django_db(transaction=True)
def test_a_web_process_that_held_an_erased_persons_key_seals_their_new_data_with_a_new_live_key(
    world: World,
) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    with running(web_server(workers=1, threads=1)) as server:
        api = f"{server.url}/api/v1/sessions"
        assert httpx.post(api, json={"id": "ivy-1", "user_id": IVY}, headers=headers).status_code == 201
        old = httpx.post(f"{api}/ivy-1/events", json={"type": "n", "payload": {"t": "old"}}, headers=headers)
        assert old.status_code == 201, old.text

        _erase(world)  # in this process: the server's worker is another one
        assert httpx.post(api, json={"id": "ivy-2", "user_id": IVY}, headers=headers).status_code == 201
        new = httpx.post(f"{api}/ivy-2/events", json={"type": "n", "payload": {"t": "new"}}, headers=headers)
        assert new.status_code == 201, new.text

        sealed_with = _key_id(Event.objects.get(session__session_id="ivy-2").payload)
        assert PersonKey.objects.get(pk=sealed_with).destroyed_at is None
        assert httpx.get(f"{api}/ivy-2/events", headers=headers).status_code == 200


def _key_held_by_another_process(world: World, capture: Any) -> tuple[PersonKeyRing, bytes]:
    """Another process's key ring, which looked the person's key up during one of its requests."""
    ring = PersonKeyRing()
    keycache.check("another-process-request")
    with capture(execute=True):
        key_id, _ = ring.key_for(world.acme.tenant.pk, IVY)
    assert ring.key_for(world.acme.tenant.pk, IVY)[0] == key_id  # remembered
    return ring, key_id


@pytest.mark.django_db
def test_a_process_that_cannot_read_the_epoch_does_not_seal_with_a_key_it_remembers(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    ring, old_key = _key_held_by_another_process(world, django_capture_on_commit_callbacks)
    _erase(world)

    keycache._set_epoch(None)  # this request found Redis unreachable
    key_id, _ = ring.key_for(world.acme.tenant.pk, IVY)

    assert key_id != old_key
    assert PersonKey.objects.get(pk=uuid.UUID(bytes=key_id)).destroyed_at is None


@pytest.mark.django_db
def test_the_purge_makes_every_process_forget_the_persons_keys_when_the_approvals_notice_never_went_out(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    ring, old_key = _key_held_by_another_process(world, django_capture_on_commit_callbacks)
    # The approval's after-commit callbacks do not run here: its new epoch never reached Redis.
    _erase(world)

    keycache.check("another-process-next-request")
    key_id, _ = ring.key_for(world.acme.tenant.pk, IVY)

    assert key_id != old_key
    assert PersonKey.objects.get(pk=uuid.UUID(bytes=key_id)).destroyed_at is None


@pytest.mark.django_db
def test_work_outside_a_request_seals_with_the_key_it_remembers_until_the_epoch_changes(
    world: World, django_capture_on_commit_callbacks: Any, django_assert_num_queries: Any, monkeypatch: Any
) -> None:
    # A Celery task (no request read the epoch) looked the key up in Postgres for every payload it sealed.
    monkeypatch.setattr(keycache, "BACKGROUND_EPOCH_SECONDS", 0.0)  # read the epoch afresh at every seal
    ring = PersonKeyRing()
    keycache._set_epoch(None)
    with django_capture_on_commit_callbacks(execute=True):
        key_id, _ = ring.key_for(world.acme.tenant.pk, IVY)

    with django_assert_num_queries(0):
        assert ring.key_for(world.acme.tenant.pk, IVY)[0] == key_id
    _erase(world)
    assert ring.key_for(world.acme.tenant.pk, IVY)[0] != key_id
