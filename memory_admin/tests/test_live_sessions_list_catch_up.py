"""A sessions list back from a dropped socket catches up a batch at a time: every session created meanwhile,
however many, and which of the rows it shows were erased, however many it shows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.utils import timezone

from compliance_app.services import approve_erasure, file_erasure
from conftest import World
from memory_admin.dashboard import live_rows
from memory_admin.dashboard.consumers import LiveConsumer
from memory_admin.tests.sockets import run
from sessions_app.services import create_session

pytestmark = pytest.mark.django_db(transaction=True)


async def _connected(user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def _batches(communicator: WebsocketCommunicator, watch: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Watch, then ask for the next batch as long as the server says there is `more`: each batch's frames,
    `watching` last."""
    batches: list[list[dict[str, Any]]] = []
    after = None
    while len(batches) < 10:
        await communicator.send_json_to({**watch, **({"after": after} if after else {})})
        batch: list[dict[str, Any]] = []
        while (reply := await communicator.receive_json_from(timeout=5))["type"] != "watching":
            batch.append(reply)
        batches.append([*batch, reply])
        if not reply["more"]:
            break
        after = reply["after"]
    return batches


@pytest.mark.parametrize("every_tenant", [False, True], ids=["tenant", "every tenant"])
def test_a_sessions_list_back_after_more_new_sessions_than_one_batch_gets_them_all_batch_by_batch(
    world: World, monkeypatch: pytest.MonkeyPatch, every_tenant: bool
) -> None:
    monkeypatch.setattr(live_rows, "CATCHUP_LIMIT", 2)
    since = timezone.now().isoformat()
    created = [
        create_session(tenant=world.acme.tenant, user_id="u", session_id=f"new-{number}")[0] for number in range(5)
    ]
    create_session(tenant=world.outsider.tenant, user_id="u", session_id="next-door")
    tenant = str(world.acme.tenant.pk)
    watch = (
        {"action": "watch_sessions", "since": since}
        if every_tenant
        else {"action": "watch_tenant", "tenant": tenant, "since": since}
    )

    async def scenario() -> list[list[dict[str, Any]]]:
        communicator = await _connected(world.support)
        batches = await _batches(communicator, watch)
        await communicator.disconnect()
        return batches

    batches = run(scenario)
    expected = [session.session_id for session in created] + (["next-door"] if every_tenant else [])
    assert [batch[-1]["more"] for batch in batches] == [True, True, False]
    rows = [frame["session"] for batch in batches for frame in batch if frame["type"] == "session.row"]
    assert rows == expected  # oldest first, each once, the newest too
    assert all(batch[-1]["what"] == ("sessions" if every_tenant else "tenant") for batch in batches)


def test_a_sessions_list_asking_again_without_since_is_told_of_its_erased_rows_and_sent_no_rows_again(
    world: World,
) -> None:
    # What a list showing more rows than one frame holds does once its sessions' catch-up is done.
    create_session(tenant=world.acme.tenant, user_id="u", session_id="recent")
    gone = "00000000-0000-4000-8000-000000000000"

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        watch = {"action": "watch_sessions", "since": (timezone.now() - timedelta(seconds=1)).isoformat()}
        (first,) = await _batches(communicator, watch)
        (second,) = await _batches(communicator, {"action": "watch_sessions", "shown": [gone]})
        await communicator.disconnect()
        return [*first, *second]

    frames = run(scenario)
    assert [(frame["type"], frame.get("session")) for frame in frames] == [
        ("session.row", "recent"),
        ("watching", None),
        ("session.erased", None),
        ("watching", None),
    ]
    assert frames[2]["sessions"] == [gone]


def test_a_sessions_list_is_told_of_its_erased_rows_before_it_gets_the_new_ones(world: World) -> None:
    # A new session may have taken the session id of an erased one: the page drops the old row first.
    old, _ = create_session(tenant=world.acme.tenant, user_id="ivy", session_id="support-chat")
    since = timezone.now().isoformat()
    request = file_erasure(
        tenant=world.acme.tenant, user_id="ivy", identifiers=[], legal_basis="gdpr_art_17", note="", filed_by="staff:a"
    )
    approve_erasure(request_id=request.pk, decided_by="staff:b")
    new, _ = create_session(tenant=world.acme.tenant, user_id="carol", session_id="support-chat")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        watch = {"action": "watch_tenant", "tenant": str(world.acme.tenant.pk), "since": since, "shown": [str(old.pk)]}
        (frames,) = await _batches(communicator, watch)
        await communicator.disconnect()
        return frames

    frames = run(scenario)
    assert [frame["type"] for frame in frames] == ["session.erased", "session.row", "watching"]
    assert frames[0]["sessions"] == [str(old.pk)]
    assert f'data-pk="{new.pk}"' in frames[1]["html"]
