"""Acknowledged checkpoint saves survive `kill -9` of the server mid-load, and every chain verifies afterwards."""

from __future__ import annotations

import httpx
import pytest

from checkpoints_app.models import Checkpoint
from conftest import World
from tests.load import WriteLoad, checkpoint_writer
from tests.servers import running, web_server

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 6
SHARED = "crash-shared"


def test_every_acknowledged_save_survives_a_kill_9_and_the_chains_verify(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    server = web_server()
    load = WriteLoad(server.url, headers)
    # Even writers own a session and send patches against their last save; odd ones share a session and
    # send full states (the server picks the parent: the latest, whoever saved it).
    writers = [
        checkpoint_writer(load, f"crash-{i}", name=f"writer {i}", patches=True)
        if i % 2 == 0
        else checkpoint_writer(load, SHARED, name=f"writer {i}", patches=False)
        for i in range(WRITERS)
    ]
    sessions = [f"crash-{i}" for i in range(0, WRITERS, 2)] + [SHARED]
    server.start()
    try:
        for session_id in sessions:
            created = httpx.post(
                f"{server.url}/api/v1/sessions", json={"id": session_id, "user_id": "alice"}, headers=headers
            )
            assert created.status_code == 201
        load.start(*writers)
        load.wait_for(200, timeout=30)
        server.kill()
        load.finish()
    finally:
        server.kill()
    # checkpoint id -> (session id, sequence, checksum, the state the agent meant to store)
    acknowledged = {pk: (c.session, c.sequence, c.checksum, c.state) for pk, c in load.checkpoints.items()}

    assert len(acknowledged) >= 50, "the load ran long enough to mean something"
    stored = {
        str(pk): (session_id, sequence, checksum)
        for pk, session_id, sequence, checksum in Checkpoint.objects.filter(pk__in=list(acknowledged)).values_list(
            "pk", "session__session_id", "sequence", "checksum"
        )
    }
    assert stored == {pk: ack[:3] for pk, ack in acknowledged.items()}

    with running(web_server()) as restarted, httpx.Client(base_url=restarted.url, headers=headers) as client:
        for session_id in sessions:
            base = f"/api/v1/sessions/{session_id}/checkpoints"
            report = client.get(f"{base}/verify").json()
            assert report["valid"] is True, report
            assert report["checked"] == Checkpoint.objects.filter(session__session_id=session_id).count()
            newest = max((ack for ack in acknowledged.values() if ack[0] == session_id), key=lambda ack: ack[1])
            latest = client.get(f"{base}/latest").json()
            # The newest acknowledged save, or one saved after it whose answer the kill swallowed.
            assert latest["sequence"] >= newest[1]
            by_sequence = client.get(f"{base}/by-sequence/{newest[1]}").json()
            assert by_sequence["state"] == newest[3]
