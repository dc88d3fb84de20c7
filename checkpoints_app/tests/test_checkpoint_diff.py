"""A diff between two checkpoints: the RFC 6902 patch, the changed paths, and the events recorded between."""

from __future__ import annotations

import jsonpatch
import pytest

from conftest import World, logged_in
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
    assert diff["events_archived_through"] is None


def test_the_diff_says_which_events_between_the_checkpoints_are_in_the_archive(
    world: World, django_capture_on_commit_callbacks
) -> None:
    from lifecycle_app.archival import archive_events_upto

    session = acme_session(world)
    record_events(session, range(1, 11))
    a = saved(world.acme.client, session, state={"x": 1})
    record_events(session, range(11, 21))
    b = saved(world.acme.client, session, state={"x": 2})
    with django_capture_on_commit_callbacks(execute=True):
        archive_events_upto(session.pk, upto=15, keep_snapshot=0, limit=100, wait=True)

    diff = world.acme.client.get(url(session, f"/diff?from={a['id']}&to={b['id']}")).json()

    # Events 11-15 were listed nowhere and nothing said so: a history with a hole.
    assert [event["version"] for event in diff["events"]] == [16, 17, 18, 19, 20]
    assert diff["events_archived_through"] == 15
    assert diff["patch"] == [{"op": "replace", "path": "/x", "value": 2}]
    page = logged_in(world.support).get(f"/sessions/{session.pk}/checkpoints/diff/", {"from": a["id"], "to": b["id"]})
    assert "Events up to v15 were moved to the archive" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        archive_events_upto(session.pk, upto=20, keep_snapshot=0, limit=100, wait=True)
    diff = world.acme.client.get(url(session, f"/diff?from={b['id']}&to={a['id']}")).json()
    assert diff["events"] == [] and diff["events_archived_through"] == 20


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
