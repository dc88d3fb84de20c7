"""Malformed, oversized or impossible saves are 4xx in the one error shape and store nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from checkpoints_app.models import Checkpoint
from conftest import World

from .helpers import acme_session, save, saved, url

pytestmark = pytest.mark.django_db

NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    "body",
    [
        {"node_id": "a"},  # neither state nor patch
        {"node_id": "a", "state": {}, "patch": []},  # both
        {"node_id": "a", "state": [1, 2]},  # state is not an object
        {"node_id": "a", "state": None},
        {"node_id": "a", "patch": [{"op": "add", "path": "/x", "value": 1}]},  # patch without parent
        {"node_id": "", "state": {}},
        {"node_id": "n" * 129, "state": {}},
        {"state": {}},  # no node_id
        {"node_id": "a", "state": {}, "sequence": 0},
        {"node_id": "a", "state": {}, "sequence": "one"},
        {"node_id": "a", "state": {}, "sequence": 2**63},
        {"node_id": "a", "state": {}, "checksum": "not-hex"},
        {"node_id": "a", "state": {}, "parent_id": "not-a-uuid"},
        {"node_id": "a", "state": {}, "metadata": ["not", "an", "object"]},
        {"node_id": "a", "state": {}, "surprise": True},  # unknown field
    ],
)
def test_a_malformed_save_returns_400_and_stores_nothing(world: World, body: dict[str, Any]) -> None:
    session = acme_session(world)

    response = world.acme.client.post(url(session), body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"
    assert not Checkpoint.objects.exists()


@pytest.mark.parametrize(
    "patch",
    [
        "not a list",
        [{"op": "launch", "path": "/x"}],
        [{"op": "add", "value": 1}],
        [{"op": "add", "path": "/x"}],
        [{"op": "move", "path": "/x"}],
        [["add", "/x", 1]],
    ],
)
def test_a_malformed_patch_returns_400_and_stores_nothing(world: World, patch: Any) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={"a": 1})

    response = save(world.acme.client, session, parent_id=first["id"], patch=patch)

    assert response.status_code == 400, response.content
    assert Checkpoint.objects.count() == 1


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/a/b/c", "value": 1}],
        [{"op": "test", "path": "/a", "value": 2}],
        [{"op": "add", "path": "", "value": [1, 2]}],  # the state must stay an object
        [{"op": "add", "path": "/list/9", "value": 1}],
        [{"op": "move", "from": "/a", "path": "/a/b"}],
        [{"op": "add", "path": "no-leading-slash", "value": 1}],
    ],
)
def test_a_patch_that_does_not_apply_returns_422_and_stores_nothing(world: World, patch: Any) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={"a": 1, "list": []})

    response = save(world.acme.client, session, parent_id=first["id"], patch=patch)

    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "unprocessable"
    assert Checkpoint.objects.count() == 1


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "add", "path": "/d/~2", "value": 1}],
        [{"op": "add", "path": "/d/~2", "value": 1}, {"op": "copy", "from": "/d/k", "path": "/x"}],
        [{"op": "replace", "path": "/d/k~", "value": 1}],
        [{"op": "move", "from": "/d/~k", "path": "/x"}],
    ],
)
def test_a_pointer_with_an_escape_other_than_tilde_0_or_1_returns_422_whatever_else_the_patch_holds(
    world: World, patch: Any
) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={"d": {"k": 1, "k~": 2, "~k": 3}})

    response = save(world.acme.client, session, parent_id=first["id"], patch=patch)

    assert response.status_code == 422, response.content
    assert "a JSON Pointer escapes only ~0 and ~1" in response.json()["error"]["message"]
    assert Checkpoint.objects.count() == 1


def test_a_patch_against_an_unknown_parent_returns_422(world: World) -> None:
    session = acme_session(world)
    saved(world.acme.client, session, state={})

    response = save(world.acme.client, session, parent_id=NO_SUCH_ID, patch=[])

    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"parent_id": NO_SUCH_ID}


def test_a_state_with_an_out_of_range_number_returns_400_not_500(world: World) -> None:
    session = acme_session(world)
    raw = b'{"node_id": "a", "state": {"x": 1e999}}'

    response = world.acme.client.post(url(session), raw, content_type="application/json")

    assert response.status_code == 400
    assert not Checkpoint.objects.exists()


def test_metadata_with_an_out_of_range_number_returns_400_not_500(world: World) -> None:
    session = acme_session(world)
    raw = b'{"node_id": "a", "state": {}, "metadata": {"x": -1e999}}'

    response = world.acme.client.post(url(session), raw, content_type="application/json")

    assert response.status_code == 400


@override_settings(CHECKPOINT_MAX_STATE_BYTES=2048)
def test_a_patch_of_copies_that_would_grow_the_state_past_the_limit_returns_422(world: World) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={"a": "x" * 100})
    # Each copy doubles the state: forty of them would be a terabyte.
    patch = [{"op": "add", "path": "/b", "value": {"a": "x" * 100}}]
    patch += [{"op": "copy", "from": "/b", "path": f"/b/c{i}"} for i in range(40)]

    response = save(world.acme.client, session, parent_id=first["id"], patch=patch)

    assert response.status_code == 422
    assert "grow the state past 2048 bytes" in response.json()["error"]["message"]
    assert Checkpoint.objects.count() == 1


@override_settings(CHECKPOINT_MAX_STATE_BYTES=2048)
def test_a_patch_that_makes_the_state_larger_than_the_limit_returns_413(world: World) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={})
    patch = [{"op": "add", "path": f"/k{i}", "value": "y" * 500} for i in range(5)]

    response = save(world.acme.client, session, parent_id=first["id"], patch=patch)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_patch_that_nests_the_state_too_deep_returns_422(world: World) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={})
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"d": deep}
    pointer = "/a" + "/d" * 39
    patch = [{"op": "add", "path": "/a", "value": deep}, {"op": "replace", "path": pointer, "value": deep}]

    response = save(world.acme.client, session, parent_id=first["id"], patch=patch)

    assert response.status_code == 422
    assert Checkpoint.objects.count() == 1


def test_a_body_that_is_not_json_returns_400(world: World) -> None:
    session = acme_session(world)

    response = world.acme.client.post(url(session), b"{nope", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
