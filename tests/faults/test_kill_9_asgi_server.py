"""`kill -9` of the ASGI server (uvicorn) in the middle of concurrent checkpoint saves and event appends, then a
restart: every acknowledged write is in Postgres, every checkpoint chain verifies, every session's event
versions run 1..head without a gap, and the restarted server carries on from there."""

from __future__ import annotations

import httpx
import pytest

from checkpoints_app.models import Checkpoint
from conftest import World
from sessions_app.models import AgentSession, Event, EventType
from sessions_app.selectors import decode
from tests.load import Step, WriteLoad, checkpoint_writer, message_writer
from tests.servers import running, uvicorn

pytestmark = pytest.mark.django_db(transaction=True)

SESSIONS = ["cp-own-0", "cp-own-1", "cp-shared", "ev-shared", "ev-own"]


def _writers(load: WriteLoad) -> list[Step]:
    return [
        checkpoint_writer(load, "cp-own-0", name="cp 0", patches=True),
        checkpoint_writer(load, "cp-own-1", name="cp 1", patches=True),
        checkpoint_writer(load, "cp-shared", name="cp 2", patches=False),
        checkpoint_writer(load, "cp-shared", name="cp 3", patches=False),
        message_writer(load, "ev-shared", name="ev 0"),
        message_writer(load, "ev-shared", name="ev 1"),
        message_writer(load, "ev-shared", name="ev 2"),
        message_writer(load, "ev-own", name="ev 3"),
    ]


def _stored_messages() -> dict[tuple[str, int], str]:
    stored = {}
    for session in AgentSession.objects.filter(session_id__in=SESSIONS):
        for version, payload in Event.objects.filter(session=session, type=EventType.MESSAGE_ADDED).values_list(
            "version", "payload"
        ):
            stored[(session.session_id, version)] = decode(session, payload)["content"]
    return stored


def _assert_versions_gap_free() -> None:
    for session in AgentSession.objects.filter(session_id__in=SESSIONS):
        versions = list(Event.objects.filter(session=session).order_by("version").values_list("version", flat=True))
        assert versions == list(range(1, session.head_version + 1)), f"{session.session_id}: gap in versions"


def test_every_acknowledged_write_survives_a_kill_9_of_the_asgi_server(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    server = uvicorn()
    load = WriteLoad(server.url, headers)
    server.start()
    try:
        for session_id in SESSIONS:
            created = httpx.post(
                f"{server.url}/api/v1/sessions", json={"id": session_id, "user_id": "alice"}, headers=headers
            )
            assert created.status_code == 201, created.text
        load.start(*_writers(load))
        load.wait_for(160, timeout=30)
        server.kill()
        load.finish()
    finally:
        server.kill()

    assert len(load.messages) >= 20 and len(load.checkpoints) >= 20, "the load ran long enough to mean something"
    stored_messages = _stored_messages()
    assert {key: stored_messages.get(key) for key in load.messages} == load.messages
    stored_checkpoints = {
        str(pk): (session_id, sequence, checksum)
        for pk, session_id, sequence, checksum in Checkpoint.objects.filter(pk__in=list(load.checkpoints)).values_list(
            "pk", "session__session_id", "sequence", "checksum"
        )
    }
    assert stored_checkpoints == {pk: (c.session, c.sequence, c.checksum) for pk, c in load.checkpoints.items()}
    _assert_versions_gap_free()
    print(
        f"\nFAULT kill-9 uvicorn: acknowledged {len(load.messages)} appends + {len(load.checkpoints)} checkpoints; "
        f"found {sum(k in stored_messages for k in load.messages)} + {len(stored_checkpoints)}; "
        f"answers {dict(load.statuses)}"
    )

    with running(uvicorn()) as restarted, httpx.Client(base_url=restarted.url, headers=headers) as client:
        for session_id in ("cp-own-0", "cp-own-1", "cp-shared"):
            report = client.get(f"/api/v1/sessions/{session_id}/checkpoints/verify").json()
            assert report["valid"] is True, report
            assert report["checked"] == Checkpoint.objects.filter(session__session_id=session_id).count()
            newest = max((c for c in load.checkpoints.values() if c.session == session_id), key=lambda c: c.sequence)
            assert (
                client.get(f"/api/v1/sessions/{session_id}/checkpoints/by-sequence/{newest.sequence}").json()["state"]
                == newest.state
            )
        # The restarted server carries on: the next append follows the last version without a gap.
        head = AgentSession.objects.get(session_id="ev-shared").head_version
        appended = client.post(
            "/api/v1/sessions/ev-shared/context/messages", json={"messages": [{"role": "user", "content": "after"}]}
        )
        assert appended.status_code == 201 and appended.json()["events"][0]["version"] == head + 1
        window = [m["content"] for m in client.get("/api/v1/sessions/ev-shared/context").json()["messages"]]
        assert window[-1] == "after"
    _assert_versions_gap_free()
