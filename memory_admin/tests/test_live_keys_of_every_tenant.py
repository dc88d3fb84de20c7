"""The unfiltered API keys page follows the keys of every tenant, however many tenants there are, through one
watch; admins only, as for the page itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.utils import timezone

from conftest import World, logged_in
from memory_admin.dashboard.consumers import LiveConsumer
from memory_admin.tests.sockets import run
from tenants_app.services import issue_api_key, revoke_api_key
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)


async def _connected(user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def _watch(communicator: WebsocketCommunicator, frame: dict[str, Any]) -> list[dict[str, Any]]:
    await communicator.send_json_to(frame)
    frames = []
    while (reply := await communicator.receive_json_from(timeout=5))["type"] != "watching":
        frames.append(reply)
    return frames


def test_the_unfiltered_api_keys_page_asks_for_every_tenant_and_the_filtered_one_for_its_tenant(
    world: World,
) -> None:
    for number in range(205):
        TenantFactory.create(name=f"t{number:03d}")
    admin = logged_in(world.admin)

    unfiltered = admin.get("/admin/keys/")
    assert unfiltered.context["watch_all"] is True and unfiltered.context["watched_tenants"] == []
    assert b'data-watch-all="1"' in unfiltered.content

    filtered = admin.get(f"/admin/keys/?tenant={world.outsider.tenant.pk}")
    assert filtered.context["watch_all"] is False
    assert filtered.context["watched_tenants"] == [str(world.outsider.tenant.pk)]


def test_keys_created_and_revoked_in_a_tenant_past_the_200th_reach_the_unfiltered_keys_page(world: World) -> None:
    for number in range(205):
        TenantFactory.create(name=f"t{number:03d}")
    zeta = TenantFactory.create(name="zeta")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.admin)
        assert await _watch(communicator, {"action": "watch_all_keys"}) == []
        key, _ = await database_sync_to_async(issue_api_key)(tenant=zeta, name="zeta bot")
        created = await communicator.receive_json_from(timeout=5)
        await database_sync_to_async(revoke_api_key)(api_key_id=key.pk)
        revoked = await communicator.receive_json_from(timeout=5)
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return [created, revoked]

    created, revoked = run(scenario)
    assert created["type"] == revoked["type"] == "api_key.row"
    assert created["key"] == revoked["key"]
    assert "zeta bot" in created["html"] and "zeta" in created["html"] and "Revoke" in created["html"]
    assert 'class="revoked"' in revoked["html"]


def test_the_unfiltered_keys_page_catches_up_on_the_keys_of_every_tenant_made_since_its_time(world: World) -> None:
    since = (timezone.now() - timedelta(seconds=1)).isoformat()
    far, _ = issue_api_key(tenant=TenantFactory.create(name="far away"), name="made while offline")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await _connected(world.admin)
        frames = await _watch(communicator, {"action": "watch_all_keys", "since": since})
        await communicator.disconnect()
        return frames

    keys = {frame["key"] for frame in run(scenario)}
    # The world's keys were made within the catch-up window too, in both of its tenants.
    assert keys == {far.pk, world.acme.api_key.pk, world.outsider.api_key.pk}


def test_support_may_not_watch_every_tenants_keys_and_gets_no_key_rows(world: World) -> None:
    async def scenario() -> tuple[dict[str, Any], bool]:
        communicator = await _connected(world.support)
        await communicator.send_json_to({"action": "watch_all_keys"})
        refused = await communicator.receive_json_from(timeout=5)
        assert await _watch(communicator, {"action": "watch_sessions"}) == []
        await database_sync_to_async(issue_api_key)(tenant=world.acme.tenant, name="not for support")
        nothing = await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()
        return refused, nothing

    refused, nothing = run(scenario)
    assert nothing
    assert refused == {"type": "error", "message": "API keys are for admins"}
