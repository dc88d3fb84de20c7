"""What a STATE_PATCHED append may do to the state: `copy` cannot blow a small patch up, nesting stays bounded,
and events stored before these limits still replay as they were accepted."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import F

from conftest import World
from memory_admin.api.parsers import MAX_JSON_DEPTH
from memory_admin.codec import encode_payload
from sessions_app.models import AgentSession, Event, EventType
from sessions_app.tests.helpers import append, create_session, head_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(world: World) -> str:
    create_session(world.acme.client, "s", "alice")
    return "s"


def _patch(world: World, *ops: dict[str, Any]) -> Any:
    return append(world.acme.client, "s", ("STATE_PATCHED", {"patch": list(ops)}))


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def _store_as_before_the_limits(session_id: str, *patches: list[dict[str, Any]]) -> None:
    """Events an append accepted before patches were held to these limits, stored as any append stores them."""
    session = AgentSession.objects.get(session_id=session_id)
    for patch in patches:
        session.head_version += 1
        Event.objects.create(
            session=session,
            version=session.head_version,
            type=EventType.STATE_PATCHED,
            payload=encode_payload({"patch": patch}, tenant_id=session.tenant_id, user_id=session.user_id),
        )
    AgentSession.objects.filter(pk=session.pk).update(head_version=F("head_version") + len(patches))


def _doubling(copies: int) -> list[dict[str, Any]]:
    """A patch of ~50 bytes per op whose every `copy` doubles the state."""
    copy = {"op": "copy", "from": "/a", "path": "/a/-"}
    return [{"op": "add", "path": "/a", "value": ["x" * 1000]}, *[copy] * copies]


def test_a_small_patch_whose_copies_would_double_the_state_again_and_again_is_refused_and_nothing_is_stored(
    world: World, session: str, settings: Any
) -> None:
    response = _patch(world, *_doubling(14))  # 1.7 KB that made a 16 MB state (25 copies: 32 GB)

    assert response.status_code == 400, response.status_code
    error = response.json()["error"]
    assert f"past {settings.API_MAX_BODY_BYTES} bytes" in error["message"]
    assert error["details"]["field"] == "payload.patch"
    assert head_version(session) == 0 and not Event.objects.exists()


def test_the_copies_of_one_append_share_its_limit_however_many_patches_it_holds(
    world: World, session: str, settings: Any
) -> None:
    settings.API_MAX_BODY_BYTES = 64 * 1024
    seed = ("STATE_PATCHED", {"patch": [{"op": "add", "path": "/a", "value": ["x" * 10_000]}]})
    copy = ("STATE_PATCHED", {"patch": [{"op": "copy", "from": "/a/0", "path": "/a/-"}]})

    within = append(world.acme.client, session, seed, *[copy] * 5)
    beyond = append(world.acme.client, session, *[copy] * 7)

    assert within.status_code == 201
    assert beyond.status_code == 400 and "copy operations" in beyond.json()["error"]["message"]
    assert head_version(session) == 6
    state = world.acme.client.get("/api/v1/sessions/s/state").json()["state"]
    assert state["data"]["a"] == ["x" * 10_000] * 6


def test_one_large_copy_among_many_small_patches_is_within_the_limit_they_share(
    world: World, session: str, settings: Any
) -> None:
    # The limit was split evenly between an append's patches: 61 patches left each ~1 KB, and a 20 KB copy
    # that is accepted alone was refused for being batched with 60 one-number adds.
    settings.API_MAX_BODY_BYTES = 64 * 1024
    seed = ("STATE_PATCHED", {"patch": [{"op": "add", "path": "/doc", "value": "x" * 20_000}]})
    copy = ("STATE_PATCHED", {"patch": [{"op": "copy", "from": "/doc", "path": "/copy"}]})
    small = [("STATE_PATCHED", {"patch": [{"op": "add", "path": f"/n{i}", "value": i}]}) for i in range(60)]

    assert append(world.acme.client, session, seed).status_code == 201
    batched = append(world.acme.client, session, copy, *small)

    assert batched.status_code == 201, batched.content
    assert head_version(session) == 62


def test_a_patch_that_would_nest_the_state_deeper_than_a_request_may_be_is_refused_and_nothing_is_stored(
    world: World, session: str
) -> None:
    first = _patch(world, {"op": "add", "path": "/n", "value": _nested(50)})
    # Within the request's own limit, but added 51 levels down: the state would be 101 levels deep.
    deeper = _patch(world, {"op": "add", "path": "/n" + "/a" * 49 + "/n", "value": _nested(50)})
    by_copy = _patch(world, {"op": "copy", "from": "/n", "path": "/n" + "/a" * 49 + "/c"})

    assert first.status_code == 201
    for refused in (deeper, by_copy):
        assert refused.status_code == 400, refused.content
        assert f"deeper than {MAX_JSON_DEPTH} levels" in refused.json()["error"]["message"]
    assert head_version(session) == 1
    assert _patch(world, {"op": "add", "path": "/x", "value": 1}).status_code == 201


def test_a_patch_nesting_the_state_exactly_as_deep_as_allowed_is_accepted(world: World, session: str) -> None:
    assert _patch(world, {"op": "add", "path": "/n", "value": _nested(50)}).status_code == 201
    innermost = "/n" + "/a" * 49  # 51 levels down: the state may hold 13 more
    too_deep = _patch(world, {"op": "add", "path": innermost + "/m", "value": _nested(MAX_JSON_DEPTH - 50)})
    deepest = _patch(world, {"op": "add", "path": innermost + "/m", "value": _nested(MAX_JSON_DEPTH - 51)})

    assert too_deep.status_code == 400
    assert deepest.status_code == 201


def test_a_state_nested_deeper_than_the_interpreter_can_copy_by_events_stored_earlier_gets_no_500(
    world: World, session: str
) -> None:
    # Ten appends, each adding 50 levels at the deepest point, were accepted before the depth limit.
    patches, path = [], ""
    for _ in range(10):
        patches.append([{"op": "add", "path": path + "/n", "value": _nested(50)}])
        path += "/n" + "/a" * 49
    _store_as_before_the_limits(session, *patches)

    trivial = _patch(world, {"op": "add", "path": "/x", "value": 1})
    batch = append(
        world.acme.client,
        session,
        ("MESSAGE_ADDED", {"role": "user", "content": "hi"}),
        ("STATE_PATCHED", {"patch": [{"op": "add", "path": "/y", "value": 1}]}),
    )
    by_copy = _patch(world, {"op": "copy", "from": "/n", "path": "/z"})

    for response in (trivial, batch, by_copy):
        assert response.status_code < 500, response.content
    assert by_copy.status_code == 400


def test_a_stored_patch_that_copied_past_the_limit_still_replays_and_later_appends_go_on(
    world: World, session: str
) -> None:
    _store_as_before_the_limits(session, _doubling(11))  # ~2 MB, past today's 1 MiB of copies

    state = world.acme.client.get("/api/v1/sessions/s/state")
    later = _patch(world, {"op": "add", "path": "/b", "value": 1})

    assert state.status_code == 200 and len(state.content) > 2_000_000
    assert later.status_code == 201
