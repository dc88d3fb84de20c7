"""Dashboard pages for checkpoints: the list with the chain's integrity, and the diff of any two."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from checkpoints_app.models import Checkpoint
from checkpoints_app.services import save_checkpoint
from conftest import World, logged_in
from sessions_app.models import AgentSession, EventType
from sessions_app.services import NewEvent, append_events, append_messages, create_session

pytestmark = pytest.mark.django_db


def _session(world: World, session_id: str = "s") -> AgentSession:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id=session_id)
    return session


def _save(
    session: AgentSession, state: dict[str, Any], parent: Checkpoint | None = None, node: str = "n"
) -> Checkpoint:
    session.refresh_from_db()  # the event head a save records is the session's as read
    return save_checkpoint(
        session=session, node_id=node, state=state, parent_id=parent.pk if parent else None
    ).checkpoint


def _chain(session: AgentSession, count: int) -> list[Checkpoint]:
    return [_save(session, {"step": i, "notes": ["x"] * i}, node=f"node-{i}") for i in range(1, count + 1)]


def _list(client: Client, session: AgentSession, **params: Any) -> Any:
    return client.get(f"/sessions/{session.pk}/checkpoints/", params)


def _diff(client: Client, session: AgentSession, **params: Any) -> Any:
    return client.get(f"/sessions/{session.pk}/checkpoints/diff/", params)


def test_the_list_shows_checkpoints_newest_first_with_kind_parent_size_and_a_verified_chain(world: World) -> None:
    session = _session(world)
    first, _second, _third = _chain(session, 3)
    _save(session, {"step": 99}, parent=first, node="after-time-travel")

    response = _list(logged_in(world.support), session)

    page = response.content.decode()
    rows = response.context["rows"]
    assert response.status_code == 200
    assert [row["checkpoint"].sequence for row in rows] == [4, 3, 2, 1]
    assert [row["fork"] for row in rows] == [True, False, False, False]
    assert "fork of #1" in page
    assert "after-time-travel" in page and "node-2" in page
    assert all(row["stored_bytes"] > 0 for row in rows)
    assert {row["integrity"] for row in rows} == {"verified"}
    assert "Chain verified: 4 checkpoints" in page
    assert rows[2]["checkpoint"].kind in ("full", "delta") and f">{rows[2]['checkpoint'].kind}<" in page


def test_the_list_highlights_the_first_broken_link_of_a_tampered_chain(world: World) -> None:
    session = _session(world)
    saves = _chain(session, 4)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE checkpoints_app_checkpoint SET node_id = 'forged' WHERE id = %s", [saves[1].pk])

    response = _list(logged_in(world.support), session)

    page = response.content.decode()
    status = {row["checkpoint"].sequence: row["integrity"] for row in response.context["rows"]}
    assert response.status_code == 200
    assert status == {1: "verified", 2: "broken", 3: "unchecked", 4: "unchecked"}
    assert "Chain broken at checkpoint #2" in page
    assert 'data-sequence="2" class=" integrity-broken"' in page


@pytest.mark.parametrize(
    ("column", "value"),
    [("node_id", "'forged'"), ("payload", "payload || '\\x00'::bytea"), ("checksum", "md5(checksum) || md5(checksum)")],
)
def test_a_row_tampered_after_the_chain_was_shown_verified_is_caught_on_the_next_view(
    world: World, column: str, value: str
) -> None:
    session = _session(world)
    saves = _chain(session, 3)
    staff = logged_in(world.support)
    assert "Chain verified: 3 checkpoints" in _list(staff, session).content.decode()

    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE checkpoints_app_checkpoint SET {column} = {value} WHERE id = %s", [saves[1].pk])  # noqa: S608

    page = _list(staff, session).content.decode()
    assert "Chain verified" not in page
    assert "Chain broken at checkpoint #2" in page


def test_the_list_pages_by_sequence_with_a_stable_keyset(world: World) -> None:
    session = _session(world)
    _chain(session, 55)
    client = logged_in(world.support)

    first = _list(client, session)
    second = _list(client, session, before=first.context["next_before"])

    assert [r["checkpoint"].sequence for r in first.context["rows"]] == list(range(55, 5, -1))
    assert [r["checkpoint"].sequence for r in second.context["rows"]] == [5, 4, 3, 2, 1]
    assert second.context["next_before"] is None
    assert _list(client, session, before="not-a-number").status_code == 200
    assert _list(client, session, before="9" * 40).status_code == 200


def test_the_list_costs_the_same_queries_however_many_checkpoints(world: World) -> None:
    warm, small, large = _session(world, "warm"), _session(world, "small"), _session(world, "large")
    for session, count in ((warm, 2), (small, 2), (large, 40)):
        _chain(session, count)
    client = logged_in(world.support)
    _list(client, warm)  # the login's one-off queries

    counts = []
    for _view in ("first (the chain is verified)", "again (the verification is reused)"):
        for session in (small, large):
            with CaptureQueriesContext(connection) as queries:
                assert _list(client, session).status_code == 200
            counts.append(len(queries))

    assert counts[0] == counts[1] and counts[2] == counts[3], counts
    assert counts[2] < counts[0] <= 12


def test_the_diff_marks_added_removed_and_changed_paths_and_offers_the_patch(world: World) -> None:
    session = _session(world)
    before = _save(session, {"plan": "draft", "tools": {"search": 1}, "drop": True})
    after = _save(session, {"plan": "final", "tools": {"search": 1, "book": 2}})

    response = _diff(logged_in(world.support), session, **{"from": before.pk, "to": after.pk})

    page = response.content.decode()
    status = {row.path: row.status for row in response.context["tree"].rows}
    assert response.status_code == 200
    assert status == {
        "/plan": "changed",
        "/tools": "inside",
        "/tools/search": "same",
        "/tools/book": "added",
        "/drop": "removed",
    }
    assert 'class="diff-changed" data-path="/plan"' in page
    assert "~ changed" in page and "+ added" in page and "\u2212 removed" in page
    assert "<del>&quot;draft&quot;</del>" in page and "<ins>&quot;final&quot;</ins>" in page
    assert '<details id="patch">' in page and "&quot;op&quot;: &quot;replace&quot;" in page


def test_the_diff_tree_marks_numbers_that_changed_type_or_sign_as_changed_as_the_summary_does(world: World) -> None:
    session = _session(world)
    before = _save(session, {"cfg": {"flag": 1, "ratio": 1, "z": 0.0, "same": 2}, "top": 0.0})
    after = _save(session, {"cfg": {"flag": True, "ratio": 1.0, "z": -0.0, "same": 2}, "top": -0.0})

    response = _diff(logged_in(world.support), session, **{"from": before.pk, "to": after.pk})

    status = {row.path: row.status for row in response.context["tree"].rows}
    assert status == {
        "/cfg": "inside",
        "/cfg/flag": "changed",
        "/cfg/ratio": "changed",
        "/cfg/z": "changed",
        "/cfg/same": "same",
        "/top": "changed",
    }
    assert response.context["diff"].summary.changed == ["/cfg/flag", "/cfg/ratio", "/cfg/z", "/top"]


def test_the_diff_lists_the_events_recorded_between_the_two_with_their_summaries(world: World) -> None:
    session = _session(world)
    append_messages(session=session, messages=[{"role": "user", "content": "before everything"}])
    first = _save(session, {"step": 1})
    append_messages(session=session, messages=[{"role": "user", "content": "book a table for two"}])
    append_events(session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": "reserve"})])
    second = _save(session, {"step": 2})

    response = _diff(logged_in(world.support), session, **{"from": first.pk, "to": second.pk})

    page = response.content.decode()
    assert [event["version"] for event in response.context["events"]] == [2, 3]
    assert "user: book a table for two" in page and "→ reserve" in page
    assert "before everything" not in page


def test_the_diff_costs_the_same_queries_however_many_events_lie_between(world: World) -> None:
    session = _session(world)
    first = _save(session, {"step": 1})
    # One event in the first range too: reading any event payload looks the person's key up once.
    append_events(session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": "n"})])
    few = _save(session, {"step": 2})
    append_events(session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": f"n{i}"}) for i in range(60)])
    many = _save(session, {"step": 3})
    client = logged_in(world.support)
    _diff(client, session, **{"from": first.pk, "to": few.pk})

    counts = []
    for target in (few, many):
        with CaptureQueriesContext(connection) as queries:
            assert _diff(client, session, **{"from": first.pk, "to": target.pk}).status_code == 200
        counts.append(len(queries))

    assert counts[0] == counts[1], counts


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 400, "`from` is missing"),
        ({"from": "FIRST"}, 400, "`to` is missing"),
        ({"from": "FIRST", "to": "not-a-uuid"}, 400, "`to` is not a checkpoint id"),
        ({"from": "FIRST", "to": "\x00"}, 400, "`to` is not a checkpoint id"),
        ({"from": "FIRST", "to": str(uuid.uuid4())}, 404, "not one of this session"),
        ({"from": "FIRST", "to": "OTHER"}, 404, "not one of this session"),
    ],
)
def test_a_diff_with_missing_malformed_or_foreign_ids_explains_itself(
    world: World, params: dict[str, str], status: int, message: str
) -> None:
    session, other = _session(world), _session(world, "other")
    ids = {"FIRST": str(_save(session, {"a": 1}).pk), "OTHER": str(_save(other, {"a": 1}).pk)}

    response = _diff(logged_in(world.support), session, **{k: ids.get(v, v) for k, v in params.items()})

    assert response.status_code == status
    assert message in response.content.decode()


def test_a_diff_over_a_tampered_checkpoint_says_which_link_broke(world: World) -> None:
    session = _session(world)
    first, second = _chain(session, 2)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE checkpoints_app_checkpoint SET checksum = %s WHERE id = %s", ["0" * 64, second.pk])

    response = _diff(logged_in(world.support), session, **{"from": first.pk, "to": second.pk})

    assert response.status_code == 409
    assert "Checkpoint 2 failed verification" in response.content.decode()


def test_a_user_without_a_staff_role_gets_403_on_both_pages(world: World) -> None:
    session = _session(world)
    first, second = _chain(session, 2)
    client = logged_in(world.nobody)

    assert _list(client, session).status_code == 403
    assert _diff(client, session, **{"from": first.pk, "to": second.pk}).status_code == 403


def test_a_visitor_who_is_not_logged_in_is_sent_to_the_login_page(world: World) -> None:
    session = _session(world)

    response = _list(Client(), session)

    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_an_unknown_session_is_a_404_on_both_pages(world: World) -> None:
    client = logged_in(world.support)
    missing = uuid.uuid4()

    assert client.get(f"/sessions/{missing}/checkpoints/").status_code == 404
    assert client.get(f"/sessions/{missing}/checkpoints/diff/").status_code == 404


def test_the_session_page_links_to_its_checkpoints(world: World) -> None:
    session = _session(world)

    page = logged_in(world.support).get(f"/sessions/{session.pk}/").content.decode()

    assert f'href="/sessions/{session.pk}/checkpoints/"' in page
