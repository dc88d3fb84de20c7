"""A STATE_PATCHED patch that does not apply is refused naming the operation, never with the patch library's
message, which quotes the whole document it failed on (the person's data, in an error body and in logs)."""

from __future__ import annotations

import pytest

from conftest import World
from memory_admin.errors import ValidationFailed
from sessions_app.models import EventType
from sessions_app.state import apply_event, empty_state
from sessions_app.tests.helpers import append, create_session

pytestmark = pytest.mark.django_db

SECRET = "private note about erin"


def test_an_appended_patch_that_does_not_apply_names_the_operation_and_not_the_data(world: World) -> None:
    create_session(world.acme.client, "s", "erin")
    notes = {"op": "add", "path": "/notes", "value": [f"{SECRET} {i}" for i in range(500)]}
    assert append(world.acme.client, "s", ("STATE_PATCHED", {"patch": [notes]})).status_code == 201

    response = append(
        world.acme.client, "s", ("STATE_PATCHED", {"patch": [{"op": "copy", "from": "/nope", "path": "/x"}]})
    )

    assert response.status_code == 400, response.content
    assert "operation 0 (copy '/x' from '/nope') does not apply" in response.json()["error"]["message"]
    assert SECRET not in response.content.decode()


def test_a_stored_patch_that_does_not_replay_is_refused_without_quoting_the_data() -> None:
    state = empty_state()
    state["data"] = {"notes": [SECRET]}

    with pytest.raises(ValidationFailed) as failure:
        apply_event(state, EventType.STATE_PATCHED, {"patch": [{"op": "add", "path": "/nope/x", "value": 1}]})

    assert "does not apply" in failure.value.message
    assert SECRET not in failure.value.message
