"""A channel value nested as deep as msgpack decodes (a thousand levels, past Python's recursion limit) is shown by
the LangGraph checkpoint diff page rather than breaking it: its change is in the tree, and what cannot be
computed so deep (the JSON Patch; levels past the display's depth) is said to be so."""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]

from conftest import World, logged_in
from langgraph_app import services
from langgraph_app.display import MAX_DEPTH, readable_checkpoint
from sessions_app.models import AgentSession


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _diff_page(world: World, thread_id: str, depth: int) -> Any:
    """Two checkpoints of a thread whose channel `x` goes from 1 to a list nested `depth` levels deep."""
    for version, value in enumerate([1, _nested(depth)]):
        services.put_checkpoint(
            tenant=world.acme.tenant,
            thread_id=thread_id,
            checkpoint_ns="",
            checkpoint_id=f"1f0-{version}",
            parent_checkpoint_id=None,
            checkpoint={"v": 4, "channel_versions": {"x": str(version)}},
            metadata={},
            blobs=[services.Blob("x", str(version), "msgpack", msgpack.packb(value))],
        )
    session = AgentSession.objects.get(tenant=world.acme.tenant, session_id=thread_id)
    return logged_in(world.support).get(
        f"/sessions/{session.pk}/checkpoints/diff/", {"kind": "langgraph", "from": "1f0-0", "to": "1f0-1"}
    )


def test_a_value_too_deep_for_the_json_patch_shows_its_change_and_says_the_patch_is_not_available(
    world: World,
) -> None:
    response = _diff_page(world, "lg-deep", 400)

    assert response.status_code == 200
    statuses = {row.path: row.status for row in response.context["tree"].rows}
    assert statuses["/channel_values/x"] == "changed"
    assert response.context["patch"].startswith("Not available: a value is nested too deeply")


def test_a_value_nested_as_deep_as_msgpack_decodes_is_shown_down_to_the_display_depth(world: World) -> None:
    response = _diff_page(world, "lg-deepest", 1020)

    assert response.status_code == 200
    session = AgentSession.objects.get(session_id="lg-deepest")
    shown = readable_checkpoint(session, checkpoint_id="1f0-1")
    assert shown is not None
    value, depth = shown.state["channel_values"]["x"], 2  # the state, then its channel_values, hold it
    while isinstance(value, list):
        [value] = value
        depth += 1
    assert (value, depth) == (f"<nested deeper than {MAX_DEPTH} levels>", MAX_DEPTH)
