"""A LangGraph save locks a channel value it finds stored, so that checkpoint retention cannot remove it under the
save (see test_langgraph_retention_races); a statement cannot lock a row it inserted itself, so a save that sends
one (channel, version) twice still stores it once, the first value sent, on both save routes."""

from __future__ import annotations

import base64

import pytest

from conftest import World
from langgraph_app.models import ChannelBlob
from memory_admin.codec import open_bytes

pytestmark = pytest.mark.django_db


def body(checkpoint_id: str) -> dict[str, object]:
    return {
        "checkpoint_id": checkpoint_id,
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"messages": "1"}},
        "blobs": [
            {"channel": "messages", "version": "1", "type": "json", "blob": base64.b64encode(text).decode()}
            for text in (b'"first"', b'"second"')
        ],
    }


@pytest.mark.parametrize("route", ["checkpoints", "saves"])
def test_a_save_that_sends_one_value_twice_stores_the_first(world: World, route: str) -> None:
    url = f"/api/v1/langgraph/threads/lg-twice/{route}"
    sent = body("1f0-0001") if route == "checkpoints" else {"ops": [{"op": "checkpoint", **body("1f0-0001")}]}
    sent["user_id"] = "alice"

    response = world.acme.client.post(url, sent, format="json")

    assert response.status_code in (200, 201), response.content
    [stored] = ChannelBlob.objects.filter(session__session_id="lg-twice")
    assert open_bytes(stored.blob or b"") == b'"first"'
