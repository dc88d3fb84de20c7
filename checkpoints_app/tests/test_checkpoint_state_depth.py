"""A state is at most as deep as a full state can be sent (the request body wraps it in one more level), whether
it arrives whole or is built by a patch: any state the service returns can be saved back as a full state."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import World
from memory_admin.api.parsers import MAX_JSON_DEPTH

from .helpers import acme_session, save, saved, url

pytestmark = pytest.mark.django_db

# A body is at most MAX_JSON_DEPTH levels deep, and `{"state": ...}` is one of them.
STATE_MAX_DEPTH = MAX_JSON_DEPTH - 1


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep ({} is one level)."""
    document: dict[str, Any] = {}
    for _ in range(depth - 1):
        document = {"a": document}
    return document


def test_the_deepest_full_state_is_accepted_and_one_level_more_is_refused(world: World) -> None:
    session = acme_session(world)

    assert save(world.acme.client, session, state=nested(STATE_MAX_DEPTH)).status_code == 201
    assert save(world.acme.client, session, state=nested(STATE_MAX_DEPTH + 1)).status_code == 400


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "add", "path": "/a" * (STATE_MAX_DEPTH - 1) + "/b", "value": {}}],
        [{"op": "add", "path": "/a/a/a", "value": nested(MAX_JSON_DEPTH - 3)}],  # as deep as a body can carry it
        [{"op": "copy", "from": "", "path": "/b"}],
    ],
    ids=["add-at-the-bottom", "add-deep-value", "copy-into-itself"],
)
def test_a_patch_may_not_make_the_state_deeper_than_a_full_state_can_be(
    world: World, patch: list[dict[str, Any]]
) -> None:
    client = world.acme.client
    session = acme_session(world)
    first = saved(client, session, state=nested(STATE_MAX_DEPTH))

    response = save(client, session, parent_id=first["id"], patch=patch)

    assert response.status_code == 422, response.content
    assert f"deeper than {STATE_MAX_DEPTH} levels" in response.json()["error"]["message"]


def test_whatever_state_a_patch_leaves_can_be_saved_back_in_full(world: World) -> None:
    client = world.acme.client
    session = acme_session(world)
    first = saved(client, session, state=nested(STATE_MAX_DEPTH))
    save(client, session, parent_id=first["id"], patch=[{"op": "add", "path": "/a" * STATE_MAX_DEPTH, "value": {}}])
    latest = client.get(url(session, "/latest")).json()

    again = save(client, session, parent_id=latest["id"], state=latest["state"])

    assert again.status_code == 201, again.content
