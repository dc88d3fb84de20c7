"""Acknowledged checkpoint saves survive `kill -9` of the server mid-load, and every chain verifies afterwards."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from checkpoints_app.models import Checkpoint
from conftest import World
from tests.servers import gunicorn, running

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 6
SHARED = "crash-shared"


def test_every_acknowledged_save_survives_a_kill_9_and_the_chains_verify(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    server = gunicorn()
    # checkpoint id -> (session id, sequence, checksum, the state the agent meant to store)
    acknowledged: dict[str, tuple[str, int, str, dict[str, Any]]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(index: int) -> None:
        # Even writers own a session and send patches against their last save; odd ones share a session and
        # send full states (the server picks the parent: the latest, whoever saved it).
        session_id = f"crash-{index}" if index % 2 == 0 else SHARED
        state: dict[str, Any] = {"writer": index, "messages": []}
        parent: str | None = None
        with httpx.Client(base_url=server.url, headers=headers, timeout=5) as client:
            for step in range(10_000):
                if stop.is_set():
                    return
                message = {"role": "user", "content": f"writer {index} step {step} " + "x" * 200}
                body: dict[str, Any] = {"node_id": f"node-{step % 3}"}
                if parent is not None:
                    body["parent_id"] = parent
                    body["patch"] = [{"op": "add", "path": "/messages/-", "value": message}]
                else:
                    body["state"] = {**state, "messages": [*state["messages"], message]}
                try:
                    response = client.post(f"/api/v1/sessions/{session_id}/checkpoints", json=body)
                except httpx.HTTPError:
                    return  # the server is gone: this save was never acknowledged
                if response.status_code != 201:
                    continue
                state = {**state, "messages": [*state["messages"], message]}
                saved = response.json()
                with lock:
                    acknowledged[saved["id"]] = (session_id, saved["sequence"], saved["checksum"], state)
                if index % 2 == 0:
                    parent = saved["id"]

    sessions = [f"crash-{i}" for i in range(0, WRITERS, 2)] + [SHARED]
    server.start()
    try:
        for session_id in sessions:
            created = httpx.post(
                f"{server.url}/api/v1/sessions", json={"id": session_id, "user_id": "alice"}, headers=headers
            )
            assert created.status_code == 201
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        server.kill()

    assert len(acknowledged) >= 50, "the load ran long enough to mean something"
    stored = {
        str(pk): (session_id, sequence, checksum)
        for pk, session_id, sequence, checksum in Checkpoint.objects.filter(pk__in=list(acknowledged)).values_list(
            "pk", "session__session_id", "sequence", "checksum"
        )
    }
    assert stored == {pk: ack[:3] for pk, ack in acknowledged.items()}

    with running(gunicorn()) as restarted, httpx.Client(base_url=restarted.url, headers=headers) as client:
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
