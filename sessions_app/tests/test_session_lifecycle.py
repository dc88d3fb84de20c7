"""Creating, reading, listing and updating sessions; ETags and the status lifecycle."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import World
from sessions_app.models import AgentSession
from sessions_app.tests.helpers import create_session

pytestmark = pytest.mark.django_db


def test_creating_a_session_without_an_id_generates_one(world: World) -> None:
    response = world.acme.client.post("/api/v1/sessions", {"user_id": "alice"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert len(body["id"]) == 36
    assert body["status"] == "active"
    assert body["head_version"] == 0
    assert response["ETag"] == '"1"'


def test_creating_a_session_with_its_own_id_twice_returns_the_same_session(world: World) -> None:
    first = world.acme.client.post("/api/v1/sessions", {"id": "thread-9", "user_id": "alice"}, format="json")
    again = world.acme.client.post("/api/v1/sessions", {"id": "thread-9", "user_id": "alice"}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["created_at"] == first.json()["created_at"]
    assert AgentSession.objects.filter(session_id="thread-9").count() == 1


def test_an_existing_id_for_another_user_is_a_409(world: World) -> None:
    create_session(world.acme.client, "thread-9", "alice")

    response = world.acme.client.post("/api/v1/sessions", {"id": "thread-9", "user_id": "bob"}, format="json")

    assert response.status_code == 409
    assert AgentSession.objects.get(session_id="thread-9").user_id == "alice"


def test_two_tenants_may_use_the_same_session_id_without_seeing_each_other(world: World) -> None:
    create_session(world.acme.client, "shared-id", "alice")
    create_session(world.outsider.client, "shared-id", "mallory")

    assert world.acme.client.get("/api/v1/sessions/shared-id").json()["user_id"] == "alice"
    assert world.outsider.client.get("/api/v1/sessions/shared-id").json()["user_id"] == "mallory"


def test_another_tenants_session_is_not_found(world: World) -> None:
    create_session(world.acme.client, "private", "alice")

    response = world.outsider.client.get("/api/v1/sessions/private")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_list_is_newest_first_filtered_by_user_and_status_and_paginated_by_cursor(world: World) -> None:
    for index in range(5):
        create_session(world.acme.client, f"a-{index}", "alice")
    create_session(world.acme.client, "b-0", "bob")
    world.acme.client.patch("/api/v1/sessions/a-0", {"status": "paused"}, format="json")
    create_session(world.outsider.client, "x-0", "alice")

    first_page = world.acme.client.get("/api/v1/sessions", {"user_id": "alice", "limit": "3"}).json()
    second_page = world.acme.client.get(first_page["next"]).json()
    paused = world.acme.client.get("/api/v1/sessions", {"status": "paused"}).json()

    assert [s["id"] for s in first_page["results"]] == ["a-4", "a-3", "a-2"]
    assert [s["id"] for s in second_page["results"]] == ["a-1", "a-0"]
    assert second_page["next"] is None
    assert [s["id"] for s in paused["results"]] == ["a-0"]


def test_a_bad_filter_value_is_a_400(world: World) -> None:
    response = world.acme.client.get("/api/v1/sessions", {"created_after": "yesterday"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_metadata_merges_like_a_json_merge_patch(world: World) -> None:
    create_session(world.acme.client, "s", "alice", metadata={"lang": "en", "tags": {"a": 1, "b": 2}})

    response = world.acme.client.patch(
        "/api/v1/sessions/s", {"metadata": {"tags": {"b": None, "c": 3}, "channel": "web"}}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["metadata"] == {"lang": "en", "tags": {"a": 1, "c": 3}, "channel": "web"}
    assert response.json()["version"] == 2
    assert response["ETag"] == '"2"'


def test_a_merge_patch_object_under_a_key_that_held_no_object_drops_its_nulls(world: World) -> None:
    # RFC 7396: the patch object is merged into {}, so its nulls remove nothing and are not stored.
    create_session(world.acme.client, "s", "alice", metadata={"lang": "en"})

    response = world.acme.client.patch(
        "/api/v1/sessions/s",
        {"metadata": {"e": {"f": None, "g": {"h": None, "i": 1}}, "lang": {"x": None}}},
        format="json",
    )

    assert response.json()["metadata"] == {"e": {"g": {"i": 1}}, "lang": {}}


@pytest.mark.parametrize(
    ("before", "after"),
    [(1, True), (0, False), (True, 1), (2, 2.0), ({"a": 1}, {"a": True}), ([1, 0], [True, False])],
)
def test_a_metadata_value_that_python_takes_for_equal_but_json_does_not_is_stored_and_moves_the_etag(
    world: World, before: object, after: object
) -> None:
    create_session(world.acme.client, "s", "alice", metadata={"flag": before})

    response = world.acme.client.patch("/api/v1/sessions/s", {"metadata": {"flag": after}}, format="json")
    read = world.acme.client.get("/api/v1/sessions/s")

    assert response.status_code == 200 and response["ETag"] == '"2"'
    assert read["ETag"] == '"2"'
    assert json.dumps(read.json()["metadata"]) == json.dumps({"flag": after})


def test_a_metadata_patch_that_changes_nothing_keeps_the_etag(world: World) -> None:
    create_session(world.acme.client, "s", "alice", metadata={"flag": True, "n": 1.5, "tags": {"a": 1, "b": 2}})

    response = world.acme.client.patch(
        "/api/v1/sessions/s", {"metadata": {"tags": {"b": 2, "a": 1}, "n": 1.5, "flag": True}}, format="json"
    )

    assert response.status_code == 200 and response["ETag"] == '"1"'


def test_metadata_over_the_size_limit_is_refused_when_the_session_is_created_too(world: World, settings) -> None:
    settings.SESSION_METADATA_MAX_BYTES = 1024
    body = {"id": "big", "user_id": "alice", "metadata": {"notes": "x" * 2000}}

    response = world.acme.client.post("/api/v1/sessions", body, format="json")

    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "metadata"
    assert not AgentSession.objects.filter(session_id="big").exists()


def test_an_update_with_a_stale_if_match_is_a_412_with_the_current_version(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    world.acme.client.patch("/api/v1/sessions/s", {"metadata": {"k": 1}}, format="json")

    response = world.acme.client.patch("/api/v1/sessions/s", {"status": "paused"}, format="json", HTTP_IF_MATCH='"1"')

    assert response.status_code == 412
    assert response.json()["error"]["details"]["current_version"] == 2
    assert AgentSession.objects.get(session_id="s").status == "active"


def test_an_update_with_the_current_if_match_succeeds(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    response = world.acme.client.patch("/api/v1/sessions/s", {"status": "paused"}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 200
    assert response.json()["status"] == "paused"


def _paused_with(world: World, if_match: str) -> Any:
    """Create session "s" (version 1), then PATCH it to paused with this If-Match."""
    create_session(world.acme.client, "s", "alice")
    return world.acme.client.patch("/api/v1/sessions/s", {"status": "paused"}, format="json", HTTP_IF_MATCH=if_match)


@pytest.mark.parametrize(
    "if_match",
    [
        '"1',  # unterminated
        '"1", junk',
        "1",  # unquoted
    ],
)
def test_an_if_match_that_is_not_a_list_of_entity_tags_is_a_412_that_says_so_and_changes_nothing(
    world: World, if_match: str
) -> None:
    response = _paused_with(world, if_match)

    assert response.status_code == 412, response.json()
    assert response.json()["error"]["details"] == {"if_match": if_match}
    stored = AgentSession.objects.get(session_id="s")
    assert (stored.status, stored.version) == ("active", 1)


@pytest.mark.parametrize(
    "if_match",
    [
        "",  # present but empty (granian hands on a value with a non-ASCII byte so): still a condition
        'W/"1"',  # weak: If-Match compares strongly, so it matches nothing
        '"1_0"',  # not a version of this API, though int() would read it as 10
        '"abc", W/"1"',
    ],
)
def test_an_if_match_that_names_no_version_of_this_api_is_a_412_with_the_current_version_and_changes_nothing(
    world: World, if_match: str
) -> None:
    response = _paused_with(world, if_match)

    assert response.status_code == 412, response.json()
    assert response.json()["error"]["details"] == {"current_version": 1}
    stored = AgentSession.objects.get(session_id="s")
    assert (stored.status, stored.version) == ("active", 1)


@pytest.mark.parametrize("if_match", ['"1", W/"1"', 'W/"7", "abc", "1"', ' ,"1",, '])
def test_an_if_match_whose_strong_tags_include_the_current_version_succeeds_whatever_else_it_lists(
    world: World, if_match: str
) -> None:
    response = _paused_with(world, if_match)

    assert response.status_code == 200, response.json()
    assert AgentSession.objects.get(session_id="s").version == 2


def test_an_if_match_listing_the_current_version_among_others_or_a_star_succeeds(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    client = world.acme.client

    assert (
        client.patch("/api/v1/sessions/s", {"status": "paused"}, format="json", HTTP_IF_MATCH='"7", "1"').status_code
        == 200
    )
    assert (
        client.patch("/api/v1/sessions/s", {"status": "active"}, format="json", HTTP_IF_MATCH=" * ").status_code == 200
    )


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (["completed", "active"], False),
        (["failed", "paused"], False),
        (["archived", "active"], False),
        (["paused", "active", "completed", "archived"], True),
        (["failed", "archived"], True),
    ],
)
def test_status_changes_follow_the_lifecycle(world: World, path: list[str], allowed: bool) -> None:
    create_session(world.acme.client, "s", "alice")
    responses = [world.acme.client.patch("/api/v1/sessions/s", {"status": step}, format="json") for step in path]

    if allowed:
        assert [r.status_code for r in responses] == [200] * len(path)
    else:
        assert responses[-1].status_code == 409
        assert "allowed" in responses[-1].json()["error"]["details"]
        assert AgentSession.objects.get(session_id="s").status == path[-2]


def test_an_empty_update_is_a_400(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    assert world.acme.client.patch("/api/v1/sessions/s", {}, format="json").status_code == 400


@pytest.mark.parametrize("bad_id", ["has space", "-leading-dash", "x" * 129, "slash/inside", ""])
def test_a_malformed_client_id_is_refused(world: World, bad_id: str) -> None:
    response = world.acme.client.post("/api/v1/sessions", {"id": bad_id, "user_id": "alice"}, format="json")
    assert response.status_code == 400
    assert not AgentSession.objects.exists()


@pytest.mark.parametrize("odd_id", ["nul%00byte", "%C3%A9t%C3%A9", "a" * 300])
def test_an_impossible_session_id_in_the_path_is_a_404(world: World, odd_id: str) -> None:
    response = world.acme.client.get(f"/api/v1/sessions/{odd_id}")
    assert response.status_code == 404
