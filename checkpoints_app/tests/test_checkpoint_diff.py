"""A diff between two checkpoints: the RFC 6902 patch, the changed paths, and the events recorded between."""

from __future__ import annotations

import jsonpatch
import pytest

from conftest import World
from memory_admin.codec import encode_payload
from sessions_app.models import AgentSession, Event

from .helpers import acme_session, saved, url

pytestmark = pytest.mark.django_db


def record_events(session: AgentSession, versions: range, event_type: str = "message.added") -> None:
    for version in versions:
        Event.objects.create(
            session=session,
            version=version,
            type=event_type,
            payload=encode_payload({"n": version}, tenant_id=session.tenant_id, user_id=session.user_id),
        )
    session.head_version = versions[-1]
    session.save(update_fields=["head_version"])


def test_the_diff_patch_turns_one_state_into_the_other(world: World) -> None:
    session = acme_session(world)
    before = {"messages": ["hi"], "plan": {"step": 1, "done": False}, "scratch": "x"}
    after = {"messages": ["hi", "hello"], "plan": {"step": 2, "done": False}, "tool": {"name": "search"}}
    a = saved(world.acme.client, session, state=before)
    b = saved(world.acme.client, session, state=after)

    response = world.acme.client.get(url(session, f"/diff?from={a['id']}&to={b['id']}"))

    assert response.status_code == 200
    diff = response.json()
    assert jsonpatch.apply_patch(before, diff["patch"]) == after
    assert diff["summary"] == {
        "added": ["/messages/1", "/tool"],
        "removed": ["/scratch"],
        "changed": ["/plan/step"],
        "truncated": False,
    }
    assert diff["from_checkpoint"]["id"] == a["id"]
    assert diff["to_checkpoint"]["sequence"] == 2


def test_the_diff_lists_the_events_recorded_between_the_two_checkpoints(world: World) -> None:
    session = acme_session(world)
    record_events(session, range(1, 3))
    a = saved(world.acme.client, session, state={"n": 2})
    record_events(session, range(3, 6), "tool.called")
    saved(world.acme.client, session, state={"n": 5})
    record_events(session, range(6, 8))
    c = saved(world.acme.client, session, state={"n": 7})
    record_events(session, range(8, 9))

    diff = world.acme.client.get(url(session, f"/diff?from={a['id']}&to={c['id']}")).json()

    assert [(event["version"], event["type"]) for event in diff["events"]] == [
        (3, "tool.called"),
        (4, "tool.called"),
        (5, "tool.called"),
        (6, "message.added"),
        (7, "message.added"),
    ]
    assert diff["events_truncated"] is False


def test_a_diff_works_backwards_and_across_branches(world: World) -> None:
    session = acme_session(world)
    root = saved(world.acme.client, session, state={"path": ["root"]})
    main = saved(world.acme.client, session, state={"path": ["root", "main"]})
    fork = saved(world.acme.client, session, parent_id=root["id"], state={"path": ["root", "fork"], "x": 1})

    diff = world.acme.client.get(url(session, f"/diff?from={fork['id']}&to={main['id']}")).json()

    assert jsonpatch.apply_patch({"path": ["root", "fork"], "x": 1}, diff["patch"]) == {"path": ["root", "main"]}
    assert diff["summary"]["changed"] == ["/path/1"]
    assert diff["summary"]["removed"] == ["/x"]


def test_a_diff_of_a_checkpoint_with_itself_is_empty(world: World) -> None:
    session = acme_session(world)
    a = saved(world.acme.client, session, state={"k": [1, 2]})

    diff = world.acme.client.get(url(session, f"/diff?from={a['id']}&to={a['id']}")).json()

    assert diff["patch"] == []
    assert diff["summary"] == {"added": [], "removed": [], "changed": [], "truncated": False}
    assert diff["events"] == []


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("?from={a}", 400),
        ("?to={a}", 400),
        ("?from=nope&to={a}", 400),
        ("?from={a}&to=00000000-0000-4000-8000-000000000000", 404),
    ],
)
def test_a_diff_with_missing_or_bad_ids_is_a_4xx(world: World, query: str, status: int) -> None:
    session = acme_session(world)
    a = saved(world.acme.client, session, state={})

    response = world.acme.client.get(url(session, "/diff" + query.format(a=a["id"])))

    assert response.status_code == status
    assert response.json()["error"]["code"] == {400: "invalid", 404: "not_found"}[status]
