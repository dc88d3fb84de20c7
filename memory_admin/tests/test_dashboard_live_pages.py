"""The live socket behind the user page, the API keys page and the sessions list: rows rendered by the server,
only what the page shows, catch-up from the page's time, and roles checked on every message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.test import override_settings
from django.utils import timezone

from compliance_app.models import ErasureRequest
from compliance_app.services import approve_erasure, file_erasure
from compliance_app.tasks import purge_erasure
from conftest import World, logged_in
from memories_app.embeddings import reset_embedder
from memories_app.models import Memory, PromotionJob
from memories_app.profiles import update_profile
from memories_app.services import (
    NewMemory,
    create_memory,
    delete_memory,
    hide_owner,
    update_memory,
)
from memory_admin.dashboard import consumers, live_rows
from memory_admin.dashboard.consumers import CLOSE_FORBIDDEN, LiveConsumer
from memory_admin.tests.sockets import run
from sessions_app.services import create_session, finish_operation, record_operation
from tenants_app.models import ApiKey
from tenants_app.services import issue_api_key
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _hashing_embedder() -> Iterator[None]:
    with override_settings(EMBEDDING_PROVIDER="hashing", EMBEDDING_DIMENSIONS=0, OPENAI_CHAT_MODEL=None):
        reset_embedder()
        yield
    reset_embedder()


async def _watch(communicator: WebsocketCommunicator, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Send a watch; the catch-up frames the server sends before it says it is watching."""
    await communicator.send_json_to(frame)
    frames = []
    while (reply := await communicator.receive_json_from(timeout=5))["type"] != "watching":
        frames.append(reply)
    return frames


async def _connected(user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


def _memory(world: World, content: str, *, user_id: str = "alice", scope: str = "user") -> Memory:
    owner = "" if scope == "global" else user_id
    return create_memory(tenant=world.acme.tenant, item=NewMemory(scope=scope, user_id=owner, content=content))


def _since(seconds_ago: float = 0) -> str:
    return (timezone.now() - timedelta(seconds=seconds_ago)).isoformat()


def test_the_user_page_gets_the_users_new_memories_as_rendered_rows_and_not_other_peoples(world: World) -> None:
    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        assert (
            await _watch(
                communicator, {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice"}
            )
            == []
        )
        await database_sync_to_async(_memory)(world, "bob likes tea", user_id="bob")
        await database_sync_to_async(_memory)(world, "alice flies to Lisbon in May")
        first = await communicator.receive_json_from(timeout=5)
        nothing_else = await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return [first, {"nothing_else": nothing_else}]

    first, rest = run(scenario)
    assert first["type"] == "memory.rows"
    (row,) = first["rows"]
    assert row["scope"] == "user" and row["deleted"] is False
    assert "alice flies to Lisbon in May" in row["html"] and f'data-memory="{row["memory"]}"' in row["html"]
    assert rest["nothing_else"] is True


def test_updates_merges_and_deletions_reach_the_user_page_keyed_by_memory(world: World) -> None:
    memory = _memory(world, "alice prefers aisle seats")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        assert (
            await _watch(
                communicator, {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice"}
            )
            == []
        )
        await database_sync_to_async(update_memory)(
            tenant=world.acme.tenant,
            memory_id=memory.pk,
            actor="agent",
            expected_versions=None,
            content="alice prefers window seats",
        )
        updated = await communicator.receive_json_from(timeout=5)
        await database_sync_to_async(delete_memory)(
            tenant=world.acme.tenant, memory_id=memory.pk, expected_versions=None
        )
        deleted = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return [updated, deleted]

    updated, deleted = run(scenario)
    assert updated["rows"][0]["memory"] == str(memory.pk)
    assert "window seats" in updated["rows"][0]["html"] and "v2" in updated["rows"][0]["html"]
    assert deleted["rows"] == [{"memory": str(memory.pk), "scope": "user", "deleted": True}]


def test_a_profile_change_sends_the_profile_card_again(world: World) -> None:
    async def scenario() -> dict[str, Any]:
        communicator = await _connected(world.support)
        assert (
            await _watch(
                communicator, {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice"}
            )
            == []
        )
        await database_sync_to_async(update_profile)(
            tenant=world.acme.tenant, user_id="alice", preferences={"seat": "aisle"}, expected_versions=None
        )
        frame: dict[str, Any] = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return frame

    frame = run(scenario)
    assert frame["type"] == "profile.html"
    assert "seat" in frame["html"] and "aisle" in frame["html"]


def test_a_reconnecting_user_page_catches_up_on_what_changed_since_its_time(world: World) -> None:
    old = _memory(world, "alice used to live in Paris")
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Memory.objects.filter(pk=old.pk).update(created_at=an_hour_ago, updated_at=an_hour_ago)
    _memory(world, "alice is vegetarian")
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="dinner-plans")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        frames = await _watch(
            communicator,
            {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice", "since": _since(5)},
        )
        await communicator.disconnect()
        return frames

    memories, sessions = run(scenario)
    assert memories["type"] == "memory.rows"
    assert [("vegetarian" in row["html"]) for row in memories["rows"]] == [True]
    assert sessions == {"type": "user.session", "session": str(session.pk), "html": sessions["html"]}
    assert "dinner-plans" in sessions["html"]


def test_support_may_not_watch_api_keys_and_a_tenant_watcher_never_gets_key_messages(world: World) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        communicator = await _connected(world.support)
        await communicator.send_json_to({"action": "watch_keys", "tenants": [str(world.acme.tenant.pk)]})
        refused = await communicator.receive_json_from(timeout=5)
        assert await _watch(communicator, {"action": "watch_tenant", "tenant": str(world.acme.tenant.pk)}) == []
        client = await database_sync_to_async(logged_in)(world.admin)
        await database_sync_to_async(client.post)(f"/admin/keys/{world.acme.api_key.pk}/revoke/")
        await database_sync_to_async(create_session)(tenant=world.acme.tenant, user_id="carol", session_id="after")
        next_frame = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return refused, next_frame

    refused, next_frame = run(scenario)
    assert refused == {"type": "error", "message": "API keys are for admins"}
    # The revocation went out before the new session; the support user's socket only saw the session.
    assert next_frame["type"] == "session.created"
    assert 'data-session="after"' in next_frame["html"] and "acme" in next_frame["html"]


def test_an_admins_key_list_gets_created_and_revoked_keys_as_rows(world: World) -> None:
    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.admin)
        tenants = [str(world.acme.tenant.pk), str(world.outsider.tenant.pk)]
        assert await _watch(communicator, {"action": "watch_keys", "tenants": tenants}) == []
        client = await database_sync_to_async(logged_in)(world.admin)
        await database_sync_to_async(client.post)(
            "/admin/keys/new/", {"tenant": str(world.outsider.tenant.pk), "name": "night shift"}
        )
        created = await communicator.receive_json_from(timeout=5)
        await database_sync_to_async(client.post)(f"/admin/keys/{world.acme.api_key.pk}/revoke/")
        revoked = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return [created, revoked]

    created, revoked = run(scenario)
    new_key = ApiKey.objects.get(name="night shift")
    assert created["type"] == "api_key.row" and created["key"] == new_key.pk
    assert "night shift" in created["html"] and "globex" in created["html"] and "Revoke" in created["html"]
    assert revoked["key"] == world.acme.api_key.pk
    assert 'class="revoked"' in revoked["html"] and "Revoke" not in revoked["html"]


def test_an_admins_key_list_catches_up_on_keys_created_since_its_time(world: World) -> None:
    key, _ = issue_api_key(tenant=world.acme.tenant, name="made while offline")

    async def scenario() -> dict[int, Any]:
        communicator = await _connected(world.admin)
        frames = await _watch(
            communicator, {"action": "watch_keys", "tenants": [str(world.acme.tenant.pk)], "since": _since(1)}
        )
        await communicator.disconnect()
        return {frame["key"]: frame for frame in frames}

    frames = run(scenario)
    # Both acme keys were made within the catch-up window (the world's and this one); nothing from globex.
    assert set(frames) == {key.pk, world.acme.api_key.pk}
    assert "made while offline" in frames[key.pk]["html"]


def test_a_role_revoked_while_watching_stops_pushed_messages_and_closes_the_socket(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "ROLE_RECHECK_SECONDS", 0.0)

    async def scenario() -> Any:
        communicator = await _connected(world.support)
        assert (
            await _watch(
                communicator, {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice"}
            )
            == []
        )
        await communicator.receive_nothing(timeout=0.2)
        await database_sync_to_async(world.support.groups.clear)()
        await database_sync_to_async(_memory)(world, "alice moved to Porto")
        return await communicator.receive_output(timeout=5)

    assert run(scenario) == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


def test_the_session_page_journal_gets_each_operation_as_a_row_with_the_pending_count(world: World) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="booking")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        await communicator.send_json_to({"action": "watch_session", "session": str(session.pk), "after_version": 0})
        assert (await communicator.receive_json_from(timeout=5))["type"] == "catchup"
        operation, _ = await database_sync_to_async(record_operation)(
            session=session, name="charge_card", key="charge-1", params={"amount": 120}
        )
        frames = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        await database_sync_to_async(finish_operation)(
            session=session, operation_id=operation.pk, status="completed", outcome={"receipt": "r-9"}
        )
        frames += [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        await communicator.disconnect()
        return frames

    recorded, pending_row, finished, completed_row = run(scenario)
    assert recorded["type"] == finished["type"] == "operation.recorded"
    assert pending_row["type"] == "operation.row" and pending_row["pending"] == 1
    assert "charge_card" in pending_row["html"] and "status-pending" in pending_row["html"]
    assert completed_row["operation"] == pending_row["operation"] and completed_row["pending"] == 0
    assert "status-completed" in completed_row["html"] and "r-9" in completed_row["html"]


def test_a_finished_promotion_sends_the_promoted_memories_of_the_watched_user_only(world: World) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="trip")
    promoted = _memory(world, "alice travels with a bike")
    someone_else = _memory(world, "bob travels light", user_id="bob")
    job = PromotionJob.objects.create(
        tenant=world.acme.tenant,
        session=session,
        created_ids=[str(promoted.pk), str(someone_else.pk)],
        updated_ids=[],
    )
    message = {"type": "promotion.finished", "tenant": str(world.acme.tenant.pk), "job": str(job.pk)}

    (frame,) = live_rows.user_page_frames(world.acme.tenant.pk, "alice", message)

    assert frame["type"] == "memory.rows"
    assert [row["memory"] for row in frame["rows"]] == [str(promoted.pk)]
    assert "bike" in frame["rows"][0]["html"]
    assert live_rows.user_page_frames(world.outsider.tenant.pk, "alice", message) == []


def test_a_user_page_catching_up_after_the_persons_erasure_was_approved_gets_their_memories_as_deleted(
    world: World,
) -> None:
    memory = _memory(world, "alice has a secret medical condition")
    hide_owner(tenant=world.acme.tenant, user_id="alice")  # what approving her erasure does, before the purge

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        frames = await _watch(
            communicator,
            {
                "action": "watch_user",
                "tenant": str(world.acme.tenant.pk),
                "user_id": "alice",
                "since": "2000-01-01T00:00:00+00:00",
            },
        )
        await communicator.disconnect()
        return frames

    (frame,) = run(scenario)
    assert frame["type"] == "memory.rows"
    assert frame["rows"] == [{"memory": str(memory.pk), "scope": "user", "deleted": True}]


def test_a_memory_written_for_a_person_whose_erasure_was_approved_reaches_the_user_page_as_deleted(
    world: World,
) -> None:
    hide_owner(tenant=world.acme.tenant, user_id="alice")

    async def scenario() -> dict[str, Any]:
        communicator = await _connected(world.support)
        await _watch(communicator, {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice"})
        # Written between approval and purge (the purge removes it too).
        await database_sync_to_async(_memory)(world, "alice flies to Lisbon in May")
        frame: dict[str, Any] = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return frame

    frame = run(scenario)
    (row,) = frame["rows"]
    assert row["deleted"] is True and "html" not in row


def test_a_profile_with_a_preference_and_a_fact_named_items_reaches_the_user_page(world: World) -> None:
    async def scenario() -> dict[str, Any]:
        communicator = await _connected(world.support)
        await _watch(communicator, {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice"})
        await database_sync_to_async(update_profile)(
            tenant=world.acme.tenant,
            user_id="alice",
            preferences={"items": "compact"},
            facts={"items": "Alice collects stamps"},
            expected_versions=None,
        )
        frame: dict[str, Any] = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return frame

    frame = run(scenario)
    assert frame["type"] == "profile.html"
    assert "<code>items</code>" in frame["html"] and "compact" in frame["html"]
    assert "Alice collects stamps" in frame["html"]


def test_memory_rows_carry_the_fresh_total_of_each_section_they_touch(world: World) -> None:
    older = _memory(world, "alice used to live in Paris")
    _memory(world, "alice is vegetarian")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        await _watch(communicator, {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice"})
        await database_sync_to_async(update_memory)(
            tenant=world.acme.tenant, memory_id=older.pk, actor="agent", expected_versions=None, content="Lisbon"
        )
        updated = await communicator.receive_json_from(timeout=5)
        await database_sync_to_async(delete_memory)(
            tenant=world.acme.tenant, memory_id=older.pk, expected_versions=None
        )
        deleted = await communicator.receive_json_from(timeout=5)
        await database_sync_to_async(_memory)(world, "opening hours are nine to five", scope="global")
        created = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return [updated, deleted, created]

    updated, deleted, created = run(scenario)
    # An edit adds nothing: the page sets its counts from these, it does not count rows itself.
    assert updated["totals"] == {"user": 2}
    assert deleted["totals"] == {"user": 1}
    assert created["totals"] == {"global": 1}


def _erase(world: World, user_id: str) -> ErasureRequest:
    request = file_erasure(tenant=world.acme.tenant, user_id=user_id, legal_basis="gdpr_art_17", filed_by="staff:cora")
    return approve_erasure(request_id=request.pk, decided_by="staff:ann")


def test_every_open_user_page_of_a_person_learns_of_their_erasure_without_the_requests_details(
    world: World,
) -> None:
    _memory(world, "alice has a secret medical condition")
    update_profile(tenant=world.acme.tenant, user_id="alice", preferences={"seat": "aisle"}, expected_versions=None)
    _memory(world, "bob likes tea", user_id="bob")
    watch_alice = {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice"}

    async def scenario() -> dict[str, Any]:
        support, compliance = await _connected(world.support), await _connected(world.compliance)
        bob_page = await _connected(world.support)
        await _watch(support, watch_alice)
        await _watch(compliance, watch_alice)
        await _watch(bob_page, {**watch_alice, "user_id": "bob"})
        await database_sync_to_async(_erase)(world, "alice")
        frames = {
            "support": await support.receive_json_from(timeout=5),
            "compliance": await compliance.receive_json_from(timeout=5),
            "bob_page_gets_nothing": await bob_page.receive_nothing(timeout=0.5),
        }
        for communicator in (support, compliance, bob_page):
            await communicator.disconnect()
        return frames

    frames = run(scenario)
    assert frames["bob_page_gets_nothing"] is True
    for role in ("support", "compliance"):
        # The notice alone: no erasure id, status or progress, nothing of the person but what the page asked for.
        assert {key: value for key, value in frames[role].items() if key != "at"} == {"type": "user.erased"}


def test_a_user_page_reconnecting_after_the_persons_erasure_was_approved_gets_only_the_notice(
    world: World,
) -> None:
    _memory(world, "alice has a secret medical condition")
    create_session(tenant=world.acme.tenant, user_id="alice", session_id="clinic")
    rendered_at = _since()
    _erase(world, "alice")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        frames = await _watch(
            communicator,
            {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice", "since": rendered_at},
        )
        await communicator.disconnect()
        return frames

    assert run(scenario) == [{"type": "user.erased"}]


def test_a_user_page_that_missed_more_changes_than_one_catch_up_holds_gets_the_rest_batch_by_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_rows, "CATCHUP_LIMIT", 2)
    created = [_memory(world, f"alice fact {number}") for number in range(5)]
    for number in range(3):
        create_session(tenant=world.acme.tenant, user_id="alice", session_id=f"trip-{number}")
    watch = {"action": "watch_user", "tenant": str(world.acme.tenant.pk), "user_id": "alice", "since": _since(5)}

    async def scenario() -> list[list[dict[str, Any]]]:
        communicator = await _connected(world.support)
        batches = []
        after = None
        while True:
            await communicator.send_json_to({**watch, **({"after": after} if after else {})})
            batch = []
            while (reply := await communicator.receive_json_from(timeout=5))["type"] != "watching":
                batch.append(reply)
            batches.append([*batch, reply])
            if not reply["more"] or len(batches) > 5:
                break
            after = reply["after"]
        await communicator.disconnect()
        return batches

    batches = run(scenario)
    assert [batch[-1]["more"] for batch in batches] == [True, True, False]
    memories = [
        row["memory"] for batch in batches for frame in batch if frame["type"] == "memory.rows" for row in frame["rows"]
    ]
    assert memories == [str(memory.pk) for memory in created]
    sessions = [frame["session"] for batch in batches for frame in batch if frame["type"] == "user.session"]
    assert len(sessions) == len(set(sessions)) == 3


# --- the sessions list and the session page against an erasure ---------------------------------------------


def test_an_open_sessions_list_is_told_to_drop_the_persons_rows_when_their_erasure_is_approved(world: World) -> None:
    erased, _ = create_session(tenant=world.acme.tenant, user_id="ivy", session_id="ivy-chat")
    create_session(tenant=world.acme.tenant, user_id="bob", session_id="bob-chat")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        assert await _watch(communicator, {"action": "watch_tenant", "tenant": str(world.acme.tenant.pk)}) == []
        await database_sync_to_async(_erase)(world, "ivy")
        frames = [await communicator.receive_json_from(timeout=5)]
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return frames

    (frame,) = run(scenario)
    assert frame["type"] == "session.erased"
    assert frame["sessions"] == [str(erased.pk)]
    # Session ids and the tenant only: nothing that names the person.
    assert set(frame) == {"type", "tenant", "sessions", "at"}
    assert "ivy" not in json.dumps(frame)


@pytest.mark.parametrize("purged", [False, True], ids=["erased", "purged"])
def test_a_sessions_list_back_from_a_blip_learns_which_of_its_rows_were_erased_meanwhile(
    world: World, purged: bool
) -> None:
    erased, _ = create_session(tenant=world.acme.tenant, user_id="ivy", session_id="ivy-chat")
    kept, _ = create_session(tenant=world.acme.tenant, user_id="bob", session_id="bob-chat")
    request = _erase(world, "ivy")
    if purged:
        purge_erasure(str(request.pk))
    shown = [str(erased.pk), str(kept.pk)]

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.support)
        watch = {"action": "watch_tenant", "tenant": str(world.acme.tenant.pk), "since": _since(), "shown": shown}
        frames = await _watch(communicator, watch)
        await communicator.disconnect()
        return frames

    frames = run(scenario)
    assert [frame for frame in frames if frame["type"] == "session.erased"] == [
        {"type": "session.erased", "tenant": str(world.acme.tenant.pk), "sessions": [str(erased.pk)]}
    ]


@pytest.mark.parametrize("purged", [False, True], ids=["erased", "purged"])
def test_a_session_page_reconnecting_after_its_persons_erasure_is_told_the_session_was_erased(
    world: World, purged: bool
) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="ivy", session_id="ivy-chat")
    request = _erase(world, "ivy")
    if purged:
        purge_erasure(str(request.pk))

    async def scenario() -> dict[str, Any]:
        communicator = await _connected(world.support)
        await communicator.send_json_to({"action": "watch_session", "session": str(session.pk), "after_version": 1})
        frame: dict[str, Any] = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return frame

    assert run(scenario) == {"type": "session.erased", "session": str(session.pk)}


# --- the sessions list of every tenant ----------------------------------------------------------------------


def test_the_unfiltered_sessions_list_gets_the_sessions_of_every_tenant_through_one_watch(world: World) -> None:
    many = [TenantFactory.create(name=f"zz-{number:02d}") for number in range(60)]
    create_session(tenant=many[0], user_id="u", session_id="before")

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        communicator = await _connected(world.support)
        caught_up = await _watch(communicator, {"action": "watch_sessions", "since": _since()})
        await database_sync_to_async(create_session)(tenant=many[-1], user_id="u", session_id="far-away")
        await database_sync_to_async(create_session)(tenant=world.outsider.tenant, user_id="u", session_id="next-door")
        live = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return caught_up, live

    caught_up, live = run(scenario)
    assert [(frame["type"], frame["session"]) for frame in caught_up] == [("session.row", "before")]
    assert [(frame["type"], frame["session"]) for frame in live] == [
        ("session.created", "far-away"),
        ("session.created", "next-door"),
    ]
    assert 'data-session="far-away"' in live[0]["html"] and "zz-59" in live[0]["html"]


def test_the_unfiltered_sessions_list_drops_the_rows_of_an_erased_person_in_any_tenant(world: World) -> None:
    erased, _ = create_session(tenant=world.acme.tenant, user_id="ivy", session_id="ivy-chat")

    async def scenario() -> dict[str, Any]:
        communicator = await _connected(world.support)
        assert await _watch(communicator, {"action": "watch_sessions"}) == []
        await database_sync_to_async(_erase)(world, "ivy")
        frame: dict[str, Any] = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return frame

    frame = run(scenario)
    assert (frame["type"], frame["sessions"]) == ("session.erased", [str(erased.pk)])
