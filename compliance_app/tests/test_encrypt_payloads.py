"""`manage.py encrypt_payloads`: legacy rows written before encryption end up encrypted under their person's key,
in batches, resumably and idempotently, and read back exactly as before."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from checkpoints_app.chain import verify_session
from checkpoints_app.models import Checkpoint
from checkpoints_app.services import save_checkpoint
from compliance_app import services
from compliance_app.keys import KEYRING
from compliance_app.legacy import encrypt_table, legacy_counts
from compliance_app.models import PersonKey
from conftest import World
from memory_admin.codec import install_keyring
from sessions_app.models import AgentSession, Event, EventSnapshot, Operation
from sessions_app.selectors import rebuild_state, save_snapshot
from sessions_app.services import append_messages, create_session, finish_operation, record_operation

pytestmark = pytest.mark.django_db


@pytest.fixture
def before_encryption() -> Iterator[None]:
    """Writes in this block go through the codec as they did before compliance_app installed its key ring."""
    install_keyring(None)
    try:
        yield
    finally:
        install_keyring(KEYRING)


def _legacy_person(world: World, user_id: str) -> AgentSession:
    session, _ = create_session(tenant=world.acme.tenant, user_id=user_id, session_id=f"{user_id}-s")
    append_messages(session=session, messages=[{"role": "user", "content": f"{user_id} message {i}"} for i in range(7)])
    save_checkpoint(session=session, node_id="a", state={"who": user_id, "step": 1, "notes": "x" * 400})
    save_checkpoint(session=session, node_id="b", state={"who": user_id, "step": 2, "notes": "x" * 400})
    operation, _ = record_operation(session=session, name="email", key="k1", params={"to": f"{user_id}@example.com"})
    finish_operation(session=session, operation_id=operation.pk, status="completed", outcome={"sent": True})
    save_snapshot(session, version=7, state=rebuild_state(session, version=7).state)
    return session


def _first_bytes(model: Any, column: str, session: AgentSession, skip: int = 0) -> set[bytes]:
    return {
        bytes(value)[skip : skip + 1] for value in model.objects.filter(session=session).values_list(column, flat=True)
    }


def test_legacy_rows_are_encrypted_per_person_and_read_back_unchanged(world: World, before_encryption: None) -> None:
    alice = _legacy_person(world, "alice")
    bob = _legacy_person(world, "bob")
    # A checkpoint from before the codec compressed: the storage layer's own zlib wrapper around plain JSON.
    oldest = Checkpoint.objects.filter(session=alice).order_by("sequence").first()
    assert oldest is not None
    with connection.cursor() as cursor:
        cursor.execute(
            "update checkpoints_app_checkpoint set payload = %s where id = %s",
            [b"z" + zlib.compress(bytes(oldest.payload)[1:]), oldest.pk],
        )
    install_keyring(KEYRING)
    expected = {
        session.pk: (rebuild_state(session, version=7).state, verify_session(session).valid) for session in (alice, bob)
    }
    assert _first_bytes(Event, "payload", alice) <= {b"J", b"Z"}
    assert legacy_counts() == {"events": 14, "snapshots": 2, "operations": 2, "checkpoints": 4}

    out = StringIO()
    call_command("encrypt_payloads", "--batch", "3", stdout=out)

    assert "no unencrypted payloads left" in out.getvalue()
    for session in (alice, bob):
        assert _first_bytes(Event, "payload", session) == {b"E"}
        assert _first_bytes(EventSnapshot, "state", session) == {b"E"}
        assert _first_bytes(Operation, "params", session) == {b"E"}
        assert _first_bytes(Operation, "result", session) == {b"E"}
        assert _first_bytes(Checkpoint, "payload", session, skip=1) == {b"E"}
        assert (rebuild_state(session, version=7).state, verify_session(session).valid) == expected[session.pk]
        assert expected[session.pk][1] is True
    assert world.acme.client.get("/api/v1/sessions/alice-s/checkpoints/latest").json()["state"]["who"] == "alice"
    raw = b"".join(bytes(value) for value in Event.objects.filter(session=alice).values_list("payload", flat=True))
    assert b"alice message" not in raw
    assert PersonKey.objects.filter(destroyed_at__isnull=True).count() == 2


def test_a_second_run_rewrites_nothing_and_an_interrupted_one_resumes(world: World, before_encryption: None) -> None:
    alice = _legacy_person(world, "alice")
    install_keyring(KEYRING)
    # An interrupted run: only the first batch of events went through.
    with connection.cursor() as cursor:
        cursor.execute("select id from sessions_app_event where session_id = %s order by id limit 2", [alice.pk])
        first_two = [row[0] for row in cursor.fetchall()]
    assert encrypt_table("events", batch=2, dry_run=True) == 7
    assert legacy_counts()["events"] == 7
    with pytest.raises(_Interrupted):
        encrypt_table("events", batch=2, report=lambda name, done: _stop_after(done, 2))
    assert legacy_counts()["events"] == 5
    encrypted_first = {pk: bytes(Event.objects.get(pk=pk).payload) for pk in first_two}

    assert encrypt_table("events", batch=2) == 5
    assert encrypt_table("events", batch=2) == 0
    call_command("encrypt_payloads", stdout=StringIO())
    call_command("encrypt_payloads", stdout=StringIO())

    assert set(legacy_counts().values()) == {0}
    assert {pk: bytes(Event.objects.get(pk=pk).payload) for pk in first_two} == encrypted_first  # not rewritten


class _Interrupted(Exception):
    """Stands for a crash right after a batch committed."""


def _stop_after(done: int, limit: int) -> None:
    if done >= limit:
        raise _Interrupted


def test_an_erased_persons_legacy_rows_are_left_to_the_purge_and_get_no_new_key(
    world: World, before_encryption: None
) -> None:
    _legacy_person(world, "alice")
    install_keyring(KEYRING)
    request = services.file_erasure(
        tenant=world.acme.tenant, user_id="alice", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    services.approve_erasure(request_id=request.pk, decided_by="staff:ann")

    call_command("encrypt_payloads", stdout=StringIO())

    assert not PersonKey.objects.filter(destroyed_at__isnull=True).exists()
    assert _first_bytes(Event, "payload", AgentSession.all_objects.get(session_id="alice-s")) <= {b"J", b"Z"}
