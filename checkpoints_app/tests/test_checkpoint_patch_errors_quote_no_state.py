"""A patch that does not apply is refused with a reason naming the operation (its index, op and pointers), never
with the patch library's message, which quotes the whole document it failed on: the person's data would go
into the error, the Idempotency-Key record that keeps the answer and the logs, at the size of the state."""

from __future__ import annotations

from typing import Any

import pytest

from checkpoints_app.patching import PatchError, apply_copying, apply_patch
from conftest import World

from .helpers import acme_session, save, saved

pytestmark = pytest.mark.django_db

SECRET = "private note about erin"
STATE: dict[str, Any] = {"notes": [f"{SECRET} {i}" for i in range(2000)], "n": 1}


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        ([{"op": "copy", "from": "/nope", "path": "/x"}], "operation 0 (copy '/x' from '/nope')"),
        ([{"op": "move", "from": "/nope", "path": "/x"}], "operation 0 (move '/x' from '/nope')"),
        (
            [{"op": "add", "path": "/y", "value": 1}, {"op": "replace", "path": "/notes/9999", "value": 1}],
            "operation 1 (replace '/notes/9999')",
        ),
        ([{"op": "copy", "from": "/n", "path": "/x"}, {"op": "remove", "path": "/n/deeper"}], "operation 1 (remove"),
        ([{"op": "test", "path": "/n", "value": 2}], "operation 0 (test '/n')"),
    ],
)
def test_a_save_whose_patch_does_not_apply_names_the_operation_and_not_the_state(
    world: World, patch: list[dict[str, Any]], named: str
) -> None:
    client = world.acme.client
    session = acme_session(world)
    first = saved(client, session, state=STATE)

    response = save(client, session, parent_id=first["id"], patch=patch)

    assert response.status_code == 422, response.content
    assert named in response.json()["error"]["message"]
    assert SECRET not in response.content.decode()
    assert len(response.content) < 1000


@pytest.mark.parametrize("apply", [apply_patch, apply_copying])
def test_the_patch_helpers_name_the_failing_operation_without_quoting_the_document(apply: Any) -> None:
    for patch in (
        [{"op": "add", "path": "/a", "value": 1}, {"op": "copy", "from": "/missing", "path": "/b"}],
        [{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/notes/x"}],
    ):
        with pytest.raises(PatchError) as failure:
            apply({**STATE}, patch, max_bytes=1_000_000)

        assert str(failure.value).startswith("operation 1 (")
        assert SECRET not in str(failure.value)
