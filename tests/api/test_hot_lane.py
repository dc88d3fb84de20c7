"""The hot lane (memory_admin.api.hot) answers what Django would, and hands over whatever is not plain.

Each comparison sends the same request twice, once through the lane (AgentClient, as the web server does)
and once straight to Django (DRF's APIClient), against two sessions in the same state, and compares status,
body and headers; the lane must actually have served the first one, or the comparison proves nothing.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import orjson
import pytest
from django.conf import settings
from django.test import override_settings
from prometheus_client import REGISTRY
from rest_framework.test import APIRequestFactory

from checkpoints_app.models import Checkpoint
from conftest import World
from langgraph_app.models import PendingWrite, ThreadCheckpoint
from memory_admin.api.hot.lane import Fallback, HotLane, HotRoute
from memory_admin.api.hot.routes import hot_routes
from memory_admin.api.throttling import WINDOW_SECONDS
from memory_admin.health import redis_client
from memory_admin.live import channel_name, publish, session_group
from sessions_app.api.hot import no_arguments, read_context
from sessions_app.models import AgentSession, Event
from sessions_app.services import update_session
from tenants_app.services import hash_key, issue_api_key
from tests.api.checks import assert_error_shape
from tests.clients import AgentClient, DjangoApiClient, served_by_hot_lane
from tests.live import drain
from tests.servers import running, web_server

# Committed, as in production: appends then take their one-statement path (inside a test's transaction they
# take the transactional one), and what a test writes is what the next request reads.
pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = {"messages": [{"role": "user", "content": "where is my parcel?"}]}
EVENT = {"type": "TOOL_EXECUTED", "payload": {"tool": "search", "result": {"hits": [1, 2]}}}
# Headers whose values differ between two requests by nature (a Location names a new checkpoint's id).
_PER_REQUEST = {"X-Request-ID", "Content-Length", "X-RateLimit-Remaining", "Location"}
# Fields that differ between the twins by nature: timestamps, request ids, the ids of new checkpoints.
_VARYING_FIELDS = {"created_at", "updated_at", "request_id", "id", "parent_id", "checkpoint_id"}


def _clients(world: World) -> tuple[AgentClient, DjangoApiClient]:
    lane = AgentClient()
    django = DjangoApiClient()
    for client in (lane, django):
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.acme.raw_key}")
    return lane, django


def _twin_sessions(world: World, *, user_id: str = "user-1") -> None:
    for session_id in ("via-lane", "via-django"):
        response = world.acme.client.post("/api/v1/sessions", {"id": session_id, "user_id": user_id}, format="json")
        assert response.status_code == 201


def _normalised(body: Any) -> Any:
    """The body without what differs by nature (_VARYING_FIELDS) and with the twin sessions' names alike."""
    if isinstance(body, dict):
        return {key: _normalised(value) for key, value in body.items() if key not in _VARYING_FIELDS}
    if isinstance(body, list):
        return [_normalised(item) for item in body]
    if isinstance(body, str):
        return body.replace("via-lane", "<twin>").replace("via-django", "<twin>")
    return body


def _same_answer(lane_response: Any, django_response: Any) -> None:
    assert served_by_hot_lane(lane_response), "the hot lane did not serve this request"
    assert not served_by_hot_lane(django_response)
    assert lane_response.status_code == django_response.status_code, (lane_response.content, django_response.content)
    assert _normalised(lane_response.json()) == _normalised(django_response.json())
    lane_headers = {name: value for name, value in lane_response.items() if name not in _PER_REQUEST}
    django_headers = {name: value for name, value in django_response.items() if name not in _PER_REQUEST}
    assert lane_headers == django_headers
    assert set(lane_response.headers) >= {"X-Request-ID", "X-RateLimit-Remaining"}
    assert ("Location" in lane_response) == ("Location" in django_response)


def _both(world: World, method: str, suffix: str, body: Any = None, **headers: Any) -> tuple[Any, Any]:
    lane, django = _clients(world)
    answers = []
    for client, session_id in ((lane, "via-lane"), (django, "via-django")):
        path = f"/api/v1/sessions/{session_id}{suffix}"
        if method == "GET":
            answers.append(client.get(path, **headers))
        else:
            answers.append(client.post(path, body, format="json", **headers))
    return answers[0], answers[1]


def test_a_message_append_is_answered_by_the_lane_as_django_answers_it(world: World) -> None:
    _twin_sessions(world)

    lane_response, django_response = _both(world, "POST", "/context/messages", MESSAGE)

    _same_answer(lane_response, django_response)
    assert lane_response.status_code == 201
    assert Event.objects.filter(session__session_id="via-lane").count() == 1


def test_a_host_that_is_not_allowed_is_refused_by_either_lane_and_nothing_is_stored(world: World) -> None:
    # The API checked ALLOWED_HOSTS only where an answer built a link (a list's `next`), as an unexplained 400.
    _twin_sessions(world)

    lane_response, django_response = _both(world, "POST", "/context/messages", MESSAGE, HTTP_HOST="evil.example")
    whoami = _clients(world)[0].get("/api/v1/whoami", HTTP_HOST="evil.example")

    for response in (lane_response, django_response, whoami):
        assert_error_shape(response, 400, "bad_request")
        assert "ALLOWED_HOSTS" in response.json()["error"]["message"]
    assert not served_by_hot_lane(lane_response)
    assert not Event.objects.filter(session__session_id__in=["via-lane", "via-django"]).exists()
    allowed, _ = _both(world, "POST", "/context/messages", MESSAGE)
    assert served_by_hot_lane(allowed) and allowed.status_code == 201


def test_event_appends_single_and_batched_are_answered_alike(world: World) -> None:
    _twin_sessions(world)

    _same_answer(*_both(world, "POST", "/events", EVENT))
    batch = {"events": [EVENT, {"type": "NODE_TRANSITION", "payload": {"node": "answer"}}], "expected_version": 1}
    _same_answer(*_both(world, "POST", "/events", batch))

    assert list(
        Event.objects.filter(session__session_id="via-lane").order_by("version").values_list("version", "type")
    ) == [(1, "TOOL_EXECUTED"), (2, "TOOL_EXECUTED"), (3, "NODE_TRANSITION")]


def test_a_context_read_is_answered_alike(world: World) -> None:
    _twin_sessions(world)
    _both(world, "POST", "/context/messages", MESSAGE)

    lane_response, django_response = _both(world, "GET", "/context")

    _same_answer(lane_response, django_response)
    assert [m["content"] for m in lane_response.json()["messages"]] == ["where is my parcel?"]


def test_a_stale_expected_version_is_the_same_409_with_nothing_stored(world: World) -> None:
    _twin_sessions(world)
    _both(world, "POST", "/events", EVENT)

    lane_response, django_response = _both(world, "POST", "/events", {**EVENT, "expected_version": 0})

    _same_answer(lane_response, django_response)
    error = assert_error_shape(lane_response, 409, "conflict")
    assert error["details"] == {"current_version": 1, "expected_version": 0}
    assert AgentSession.objects.get(session_id="via-lane").head_version == 1


def test_an_invalid_message_is_the_same_400_with_nothing_stored(world: World) -> None:
    _twin_sessions(world)

    lane_response, django_response = _both(world, "POST", "/context/messages", {"messages": [{"role": "robot"}]})

    _same_answer(lane_response, django_response)
    assert_error_shape(lane_response, 400)
    assert not Event.objects.filter(session__session_id="via-lane").exists()


def test_an_append_to_a_completed_session_is_the_same_409(world: World) -> None:
    _twin_sessions(world)
    for session in AgentSession.objects.filter(session_id__in=("via-lane", "via-django")):
        update_session(session=session, status="completed")

    _same_answer(*_both(world, "POST", "/events", EVENT))


def test_an_unknown_session_is_the_same_404(world: World) -> None:
    lane, django = _clients(world)

    lane_response = lane.post("/api/v1/sessions/nobody-here/events", EVENT, format="json")
    django_response = django.post("/api/v1/sessions/nobody-here/events", EVENT, format="json")

    _same_answer(lane_response, django_response)
    assert_error_shape(lane_response, 404, "not_found")


def test_an_outsider_gets_404_from_the_lane_and_nothing_is_stored(world: World) -> None:
    _twin_sessions(world)
    outsider = AgentClient()
    outsider.credentials(HTTP_AUTHORIZATION=f"Bearer {world.outsider.raw_key}")

    appended = outsider.post("/api/v1/sessions/via-lane/context/messages", MESSAGE, format="json")
    read = outsider.get("/api/v1/sessions/via-lane/context")

    for response in (appended, read):
        assert served_by_hot_lane(response)
        assert_error_shape(response, 404, "not_found")
    assert not Event.objects.filter(session__session_id="via-lane").exists()


def test_a_session_erased_after_the_lane_remembered_it_is_not_written_to(world: World) -> None:
    _twin_sessions(world)
    lane, _ = _clients(world)
    assert lane.post("/api/v1/sessions/via-lane/events", EVENT, format="json").status_code == 201
    AgentSession.objects.filter(session_id="via-lane").update(erased_at="2026-01-01T00:00:00Z")

    response = lane.post("/api/v1/sessions/via-lane/events", EVENT, format="json")

    assert served_by_hot_lane(response)
    assert_error_shape(response, 404, "not_found")
    assert Event.objects.filter(session__session_id="via-lane").count() == 1


def test_a_session_id_created_again_after_erasure_is_appended_to_the_new_session(world: World) -> None:
    lane, _ = _clients(world)
    world.acme.client.post("/api/v1/sessions", {"id": "reborn", "user_id": "first"}, format="json")
    assert lane.post("/api/v1/sessions/reborn/events", EVENT, format="json").status_code == 201
    AgentSession.objects.filter(session_id="reborn").update(erased_at="2026-01-01T00:00:00Z")
    world.acme.client.post("/api/v1/sessions", {"id": "reborn", "user_id": "second"}, format="json")

    response = lane.post("/api/v1/sessions/reborn/events", EVENT, format="json")

    assert response.status_code == 201 and served_by_hot_lane(response)
    new = AgentSession.objects.get(session_id="reborn", erased_at__isnull=True)
    assert new.user_id == "second" and new.head_version == 1
    assert Event.objects.filter(session=new).count() == 1


@pytest.mark.parametrize(
    ("description", "body", "headers"),
    [
        ("an unknown field", {**EVENT, "colour": "blue"}, {}),
        ("a version sent as text", {**EVENT, "expected_version": "1"}, {}),
        ("a type with spaces around it", {"type": " TOOL_EXECUTED ", "payload": {}}, {}),
        ("a type that is not a well-formed type", {"type": "2nd try", "payload": {}}, {}),
        ("an empty batch", {"events": []}, {}),
        ("a batch over EVENT_BATCH_MAX", {"events": [EVENT] * (settings.EVENT_BATCH_MAX + 1)}, {}),
        ("an unusable Idempotency-Key", EVENT, {"HTTP_IDEMPOTENCY_KEY": "   "}),
        ("an Accept the API cannot serve", EVENT, {"HTTP_ACCEPT": "text/html"}),
        ("a body that is not an object", [EVENT], {}),
    ],
)
def test_a_request_that_is_not_plain_is_handed_to_django(
    world: World, description: str, body: Any, headers: dict[str, Any]
) -> None:
    _twin_sessions(world)
    lane, django = _clients(world)

    lane_response = lane.post("/api/v1/sessions/via-lane/events", body, format="json", **headers)
    django_response = django.post("/api/v1/sessions/via-django/events", body, format="json", **headers)

    assert not served_by_hot_lane(lane_response), description
    assert lane_response.status_code == django_response.status_code, description


def test_a_query_string_or_a_text_body_is_handed_to_django_which_refuses_what_the_route_does_not_take(
    world: World,
) -> None:
    _twin_sessions(world)
    lane, _ = _clients(world)

    with_query = lane.get("/api/v1/sessions/via-lane/context?debug=1")
    as_text = lane.post("/api/v1/sessions/via-lane/events", "hello", content_type="text/plain")

    assert not served_by_hot_lane(with_query)
    assert_error_shape(with_query, 400, "invalid")
    assert with_query.json()["error"]["details"] == {"unknown": ["debug"], "accepted": []}
    assert not served_by_hot_lane(as_text)
    assert_error_shape(as_text, 415)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sessions/via-lane/context",
        "/api/v1/sessions/via-lane/checkpoints/latest",
        "/api/v1/langgraph/threads/via-lane/checkpoints",
    ],
)
@override_settings(API_MAX_BODY_BYTES=1024)
def test_a_read_that_carries_a_body_is_handed_to_django_which_refuses_one_over_the_limit_with_413(
    world: World, path: str
) -> None:
    # The lane answered 200 to a read with a body over the limit, where Django answers 413.
    _twin_sessions(world)
    _twin_checkpoints(world)
    lane, _ = _clients(world)

    plain = lane.get(path)
    oversized = lane.generic("GET", path, "x" * 1025, content_type="application/json")
    small = lane.generic("GET", path, "{}", content_type="application/json")
    not_a_number = lane.generic("GET", path, "{}", content_type="application/json", CONTENT_LENGTH="two")
    chunked = lane.get(path, HTTP_TRANSFER_ENCODING="chunked")

    assert served_by_hot_lane(plain)
    for response in (oversized, small, not_a_number, chunked):
        assert not served_by_hot_lane(response)
    assert_error_shape(oversized, 413, "payload_too_large")
    assert_error_shape(not_a_number, 400, "bad_request")
    assert small.status_code == chunked.status_code == plain.status_code


def test_an_unknown_key_is_handed_to_django_which_answers_401(world: World) -> None:
    client = AgentClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer mk_nothing_here")

    response = client.post("/api/v1/sessions/any/events", EVENT, format="json")

    assert not served_by_hot_lane(response)
    assert_error_shape(response, 401, "unauthenticated")


@override_settings(API_RATE_LIMIT_PER_MINUTE=2)
def test_a_request_over_the_limit_is_counted_once_and_refused_by_django(world: World) -> None:
    _twin_sessions(world)
    if WINDOW_SECONDS - time.time() % WINDOW_SECONDS < 3:
        time.sleep(3.1)
    _, raw_key = issue_api_key(tenant=world.acme.tenant, name="limited")
    lane = AgentClient()
    lane.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    answers = [lane.post("/api/v1/sessions/via-lane/events", EVENT, format="json") for _ in range(3)]

    assert [answer.status_code for answer in answers] == [201, 201, 429]
    assert [served_by_hot_lane(answer) for answer in answers] == [True, True, False]
    assert answers[1]["X-RateLimit-Remaining"] == "0"
    assert_error_shape(answers[2], 429, "rate_limited")
    window = int(time.time() // WINDOW_SECONDS)
    counter = redis_client().get(f"mem:rl:{hash_key(raw_key)[:32]}:{window}")
    assert counter == b"3"  # the handed-over request was counted by the lane only
    assert AgentSession.objects.get(session_id="via-lane").head_version == 2


def test_a_route_that_does_not_shadow_the_url_it_names_stops_the_start() -> None:
    wrong = HotRoute("GET", "/api/v1/sessions/{session_id}/context", "api:session-events", no_arguments, read_context)

    with pytest.raises(RuntimeError, match="resolves to api:session-context"):
        HotLane(lambda environ, start_response: [], [wrong])


# --- checkpoints ------------------------------------------------------------------------------------------


def _twin_checkpoints(world: World) -> tuple[Any, Any]:
    """A full save on each twin session, answered alike; the two saves' answers."""
    return _both(world, "POST", "/checkpoints", {"node_id": "plan", "state": {"messages": []}, "metadata": {"n": 1}})


def test_a_checkpoint_save_and_a_latest_read_are_answered_alike(world: World) -> None:
    _twin_sessions(world)
    lane_first, django_first = _twin_checkpoints(world)
    _same_answer(lane_first, django_first)
    patch = [{"op": "add", "path": "/messages/-", "value": {"role": "user", "content": "hi"}}]

    lane, django = _clients(world)
    lane_second = lane.post(
        "/api/v1/sessions/via-lane/checkpoints",
        {"node_id": "act", "parent_id": lane_first.json()["id"], "patch": patch},
        format="json",
    )
    django_second = django.post(
        "/api/v1/sessions/via-django/checkpoints",
        {"node_id": "act", "parent_id": django_first.json()["id"], "patch": patch},
        format="json",
    )

    assert lane_second.status_code == django_second.status_code == 201
    assert lane_second["Location"].startswith("/api/v1/sessions/via-lane/checkpoints/")
    lane_body, django_body = lane_second.json(), django_second.json()
    for varying in ("id", "parent_id", "checksum"):
        lane_body.pop(varying), django_body.pop(varying)
    assert lane_body == {**django_body, "created_at": lane_body["created_at"]}
    lane_latest, django_latest = _both(world, "GET", "/checkpoints/latest")
    assert served_by_hot_lane(lane_latest)
    assert lane_latest.json()["state"] == django_latest.json()["state"] == {"messages": [patch[0]["value"]]}


def test_a_retried_checkpoint_save_with_its_sequence_returns_the_stored_one(world: World) -> None:
    _twin_sessions(world)
    body = {"node_id": "plan", "state": {"step": 1}, "sequence": 1}

    first, _ = _both(world, "POST", "/checkpoints", body)
    lane_retry, django_retry = _both(world, "POST", "/checkpoints", body)

    assert first.status_code == 201
    _same_answer(lane_retry, django_retry)
    assert lane_retry.status_code == 200 and lane_retry.json()["id"] == first.json()["id"]


def test_a_checkpoint_save_with_a_wrong_checksum_is_the_same_422(world: World) -> None:
    _twin_sessions(world)

    lane_response, django_response = _both(
        world, "POST", "/checkpoints", {"node_id": "plan", "state": {}, "checksum": "0" * 64}
    )

    _same_answer(lane_response, django_response)
    assert_error_shape(lane_response, 422)


def test_a_checkpoint_save_to_an_unknown_session_is_the_same_404(world: World) -> None:
    lane, django = _clients(world)
    body = {"node_id": "plan", "state": {}}

    lane_response = lane.post("/api/v1/sessions/nobody-here/checkpoints", body, format="json")
    django_response = django.post("/api/v1/sessions/nobody-here/checkpoints", body, format="json")

    _same_answer(lane_response, django_response)


@pytest.mark.parametrize(
    "body",
    [
        {"node_id": "plan", "state": {}, "patch": []},
        {"node_id": "plan", "patch": [{"op": "add", "path": "/x", "value": 1}]},
        {"node_id": "plan", "state": {}, "parent_id": "not-a-uuid"},
        {"node_id": "plan", "state": {}, "sequence": 0},
        {"node_id": "plan", "state": [], "metadata": {}},
        {"node_id": " plan ", "state": {}},
    ],
)
def test_a_checkpoint_save_that_is_not_plain_is_handed_to_django(world: World, body: dict[str, Any]) -> None:
    _twin_sessions(world)
    lane, django = _clients(world)

    lane_response = lane.post("/api/v1/sessions/via-lane/checkpoints", body, format="json")
    django_response = django.post("/api/v1/sessions/via-django/checkpoints", body, format="json")

    assert not served_by_hot_lane(lane_response)
    assert lane_response.status_code == django_response.status_code


# --- LangGraph ----------------------------------------------------------------------------------------------


def _step(checkpoint_id: str, parent: str | None) -> dict[str, Any]:
    blob = base64.b64encode(b'"refunds"').decode()
    return {
        "ops": [
            {
                "op": "writes",
                "checkpoint_id": parent or "1f0-0000",
                "task_id": "task-a",
                "writes": [{"channel": "topic", "type": "json", "blob": blob}],
            },
            {
                "op": "checkpoint",
                "checkpoint_id": checkpoint_id,
                "parent_checkpoint_id": parent,
                "checkpoint": {"v": 4, "channel_versions": {"topic": 1}},
                "metadata": {"step": 1},
                "blobs": [{"channel": "topic", "version": "1", "type": "json", "blob": blob}],
            },
        ],
        "user_id": "user-1",
    }


def test_a_langgraph_step_is_stored_by_the_lane_as_by_django(world: World) -> None:
    lane, django = _clients(world)
    answers = []
    for client, thread in ((lane, "lg-via-lane"), (django, "lg-via-django")):
        path = f"/api/v1/langgraph/threads/{thread}/saves"
        answers.append(
            (
                client.post(path, _step("1f0-0001", None), format="json"),
                client.post(path, _step("1f0-0002", "1f0-0001"), format="json"),
            )
        )

    for lane_response, django_response in zip(*answers, strict=True):
        _same_answer(lane_response, django_response)
    stored = {
        thread: list(
            ThreadCheckpoint.objects.filter(session__session_id=thread)
            .order_by("checkpoint_id")
            .values_list("checkpoint_id", "parent_checkpoint_id")
        )
        for thread in ("lg-via-lane", "lg-via-django")
    }
    assert stored["lg-via-lane"] == stored["lg-via-django"] == [("1f0-0001", ""), ("1f0-0002", "1f0-0001")]
    assert PendingWrite.objects.filter(session__session_id="lg-via-lane").count() == 2


def test_an_outsider_cannot_save_into_a_langgraph_thread_through_the_lane(world: World) -> None:
    lane, _ = _clients(world)
    lane.post("/api/v1/langgraph/threads/lg-owned/saves", _step("1f0-0001", None), format="json")
    outsider = AgentClient()
    outsider.credentials(HTTP_AUTHORIZATION=f"Bearer {world.outsider.raw_key}")

    response = outsider.post("/api/v1/langgraph/threads/lg-owned/saves", _step("1f0-0002", "1f0-0001"), format="json")

    assert served_by_hot_lane(response) and response.status_code == 200
    acme_thread = AgentSession.objects.get(tenant=world.acme.tenant, session_id="lg-owned")
    assert list(ThreadCheckpoint.objects.filter(session=acme_thread).values_list("checkpoint_id", flat=True)) == [
        "1f0-0001"
    ]
    assert AgentSession.objects.get(tenant=world.outsider.tenant, session_id="lg-owned") != acme_thread


def _twin_threads(world: World) -> None:
    lane, django = _clients(world)
    for client, thread in ((lane, "lg-via-lane"), (django, "lg-via-django")):
        for checkpoint_id, parent in (("1f0-0001", None), ("1f0-0002", "1f0-0001"), ("1f0-0003", "1f0-0002")):
            saved = client.post(
                f"/api/v1/langgraph/threads/{thread}/saves", _step(checkpoint_id, parent), format="json"
            )
            assert saved.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "?checkpoint_ns=&limit=1",  # get_tuple: the latest, with its blobs and the writes made on it
        "?checkpoint_ns=&checkpoint_id=1f0-0002&limit=1",  # get_tuple of one checkpoint
        "?checkpoint_ns=&before=1f0-0003&limit=2",  # list's next page
        "?limit=2",  # a full page: next_after and next_before are set
        "",  # every checkpoint of every namespace
        "?checkpoint_id=1f0-9999&limit=1",  # none
    ],
)
def test_a_langgraph_checkpoint_read_is_answered_by_the_lane_as_django_answers_it(world: World, query: str) -> None:
    _twin_threads(world)
    lane, django = _clients(world)

    lane_response = lane.get(f"/api/v1/langgraph/threads/lg-via-lane/checkpoints{query}")
    django_response = django.get(f"/api/v1/langgraph/threads/lg-via-django/checkpoints{query}")

    _same_answer(lane_response, django_response)
    answer = django_response.json()
    assert lane_response.json() == {
        **answer,
        "results": [
            {**item, "thread_id": "lg-via-lane"} for item in answer["results"]
        ],  # the checkpoint ids (left out by the comparison above) too
        "next_after": answer["next_after"] and {**answer["next_after"], "thread_id": "lg-via-lane"},
    }


def test_a_langgraph_read_of_an_unknown_or_an_outsiders_thread_is_the_same_404_from_the_lane(world: World) -> None:
    _twin_threads(world)
    lane, django = _clients(world)
    outsider = AgentClient()
    outsider.credentials(HTTP_AUTHORIZATION=f"Bearer {world.outsider.raw_key}")

    unknown = lane.get("/api/v1/langgraph/threads/lg-nobody/checkpoints?checkpoint_ns=&limit=1")
    unknown_django = django.get("/api/v1/langgraph/threads/lg-nobody/checkpoints?checkpoint_ns=&limit=1")
    not_theirs = outsider.get("/api/v1/langgraph/threads/lg-via-lane/checkpoints?checkpoint_ns=&limit=1")

    _same_answer(unknown, unknown_django)
    assert served_by_hot_lane(not_theirs)
    assert_error_shape(not_theirs, 404, "not_found")


@pytest.mark.parametrize(
    ("description", "query"),
    [
        ("a metadata filter", '?filter={"step":1}'),
        ("a limit out of range", "?limit=0"),
        ("a limit spelled otherwise than in digits", "?limit=+1"),
        ("a limit that is not a number", "?limit=one"),
        ("a parameter given twice", "?limit=1&limit=2"),
        ("a parameter the view does not read", "?limit=1&debug=1"),
        ("a parameter without a value", "?limit"),
        ("a namespace longer than the view takes", "?checkpoint_ns=" + "n" * 513),
        ("a value that is not UTF-8", "?checkpoint_ns=%ff"),
        ("a NUL character", "?checkpoint_ns=%00"),
    ],
)
def test_a_langgraph_read_whose_query_is_not_plain_is_handed_to_django(
    world: World, description: str, query: str
) -> None:
    _twin_threads(world)
    lane, django = _clients(world)

    lane_response = lane.get(f"/api/v1/langgraph/threads/lg-via-lane/checkpoints{query}")
    django_response = django.get(f"/api/v1/langgraph/threads/lg-via-django/checkpoints{query}")

    assert not served_by_hot_lane(lane_response), description
    assert lane_response.status_code == django_response.status_code, description
    assert lane_response.status_code < 500, description


def test_a_langgraph_body_the_parser_refuses_is_handed_to_django(world: World) -> None:
    lane, _ = _clients(world)

    response = lane.post("/api/v1/langgraph/threads/lg-x/saves", {"ops": [{"op": "nonsense"}]}, format="json")

    assert not served_by_hot_lane(response)
    assert_error_shape(response, 400)


# --- LangGraph's store ----------------------------------------------------------------------------------------

_STORE = "/api/v1/langgraph/store/batch"


def _store_puts(prefix: str) -> dict[str, Any]:
    return {
        "ops": [
            {"op": "put", "namespace": [prefix, "alice"], "key": "tone", "value": {"text": "formal", "rank": 2}},
            {
                "op": "put",
                "namespace": [prefix, "alice"],
                "key": "tea",
                "value": {"text": "likes green tea"},
                "index": ["text"],
                "ttl": 60,
            },
            {"op": "put", "namespace": [prefix, "bob"], "key": "tea", "value": {"text": "no tea", "rank": 1}},
            {"op": "put", "namespace": [prefix, "bob"], "key": "gone", "value": None},
        ]
    }


def _store_reads(prefix: str) -> dict[str, Any]:
    return {
        "ops": [
            {"op": "get", "namespace": [prefix, "alice"], "key": "tea"},
            {"op": "get", "namespace": [prefix, "alice"], "key": "nothing", "refresh_ttl": False},
            {"op": "search", "namespace_prefix": [prefix], "filter": {"rank": {"$gte": 1}}, "limit": 5},
            {"op": "search", "namespace_prefix": [prefix], "query": "green tea", "limit": 3, "offset": 0},
            {"op": "list_namespaces", "prefix": [prefix, "*"], "limit": 10},
        ]
    }


def test_a_store_batch_is_answered_by_the_lane_as_django_answers_it(world: World) -> None:
    lane, django = _clients(world)

    puts = (
        lane.post(_STORE, _store_puts("via-lane"), format="json"),
        django.post(_STORE, _store_puts("via-django"), format="json"),
    )
    reads = (
        lane.post(_STORE, _store_reads("via-lane"), format="json"),
        django.post(_STORE, _store_reads("via-django"), format="json"),
    )
    # The same items read by each lane: every field alike, timestamps and scores included.
    same_items = (
        lane.post(_STORE, _store_reads("via-lane"), format="json"),
        django.post(_STORE, _store_reads("via-lane"), format="json"),
    )

    for lane_response, django_response in (puts, reads, same_items):
        _same_answer(lane_response, django_response)
    assert same_items[0].json() == same_items[1].json()
    results = reads[0].json()["results"]
    assert results[0]["value"] == {"text": "likes green tea"} and results[1] is None
    assert [item["namespace"][1] + "/" + item["key"] for item in results[2]] == ["alice/tone", "bob/tea"]
    assert results[3][0]["key"] == "tea" and results[3][0]["score"] > 0
    assert results[4] == [["via-lane", "alice"], ["via-lane", "bob"]]


def test_an_outsiders_store_batch_through_the_lane_sees_and_changes_nothing_of_acmes(world: World) -> None:
    lane, _ = _clients(world)
    lane.post(_STORE, _store_puts("shared"), format="json")
    outsider = AgentClient()
    outsider.credentials(HTTP_AUTHORIZATION=f"Bearer {world.outsider.raw_key}")

    seen = outsider.post(_STORE, _store_reads("shared"), format="json")
    outsider.post(
        _STORE, {"ops": [{"op": "put", "namespace": ["shared", "alice"], "key": "tea", "value": None}]}, format="json"
    )

    assert served_by_hot_lane(seen) and seen.json()["results"] == [None, None, [], [], []]
    kept = lane.post(_STORE, {"ops": [{"op": "get", "namespace": ["shared", "alice"], "key": "tea"}]}, format="json")
    assert kept.json()["results"][0]["value"] == {"text": "likes green tea"}


@pytest.mark.parametrize(
    "body",
    [
        {"ops": []},
        {"ops": [{"op": "get", "namespace": ["a"], "key": "k"}], "dry_run": True},
        {"ops": [{"op": "get", "namespace": ["a.b"], "key": "k"}]},
        {"ops": [{"op": "search", "limit": 0}]},
        [{"op": "get", "namespace": ["a"], "key": "k"}],
    ],
)
def test_a_store_batch_the_parser_refuses_is_handed_to_django(world: World, body: Any) -> None:
    lane, _ = _clients(world)

    response = lane.post(_STORE, body, format="json")

    assert not served_by_hot_lane(response)
    assert_error_shape(response, 400)


def test_a_store_filter_with_an_unknown_operator_is_the_same_400_with_nothing_stored(world: World) -> None:
    lane, django = _clients(world)
    body = {
        "ops": [
            {"op": "put", "namespace": ["x"], "key": "k", "value": {"n": 1}},
            {"op": "search", "namespace_prefix": ["x"], "filter": {"n": {"$near": 1}}},
        ]
    }

    _same_answer(lane.post(_STORE, body, format="json"), django.post(_STORE, body, format="json"))
    alone = {"ops": body["ops"][1:]}  # one operation: run without a transaction of its own
    _same_answer(lane.post(_STORE, alone, format="json"), django.post(_STORE, alone, format="json"))
    nothing = lane.post(_STORE, {"ops": [{"op": "get", "namespace": ["x"], "key": "k"}]}, format="json")
    assert nothing.json()["results"] == [None]


# --- Idempotency-Key ----------------------------------------------------------------------------------------


def test_a_keyed_append_is_served_by_the_lane_and_its_retry_replayed_by_django(world: World) -> None:
    _twin_sessions(world)
    lane, _ = _clients(world)
    path = "/api/v1/sessions/via-lane/events"

    first = lane.post(path, EVENT, format="json", HTTP_IDEMPOTENCY_KEY="append-1")
    retry = lane.post(path, EVENT, format="json", HTTP_IDEMPOTENCY_KEY="append-1")

    assert served_by_hot_lane(first) and first.status_code == 201
    assert not served_by_hot_lane(retry) and retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert AgentSession.objects.get(session_id="via-lane").head_version == 1


def test_a_keyed_append_whose_redis_record_is_gone_is_replayed_from_postgres(world: World) -> None:
    _twin_sessions(world)
    lane, _ = _clients(world)
    path = "/api/v1/sessions/via-lane/context/messages"
    first = lane.post(path, MESSAGE, format="json", HTTP_IDEMPOTENCY_KEY="say-1")
    redis_client().flushdb()

    retry = lane.post(path, MESSAGE, format="json", HTTP_IDEMPOTENCY_KEY="say-1")

    assert served_by_hot_lane(first) and served_by_hot_lane(retry)
    assert retry.status_code == 201 and retry.json()["head_version"] == first.json()["head_version"] == 1
    assert AgentSession.objects.get(session_id="via-lane").head_version == 1


@pytest.mark.parametrize(
    ("method", "suffix", "first", "second"),
    [
        ("POST", "/context/messages", MESSAGE, {"messages": [{"role": "user", "content": "something else"}]}),
        ("POST", "/events", EVENT, {"type": "TOOL_EXECUTED", "payload": {"tool": "search", "result": {"hits": []}}}),
        ("PUT", "/context", {"messages": [MESSAGE["messages"][0]]}, {"messages": []}),
        ("PUT", "/tools/search", {"state": {"q": "first"}}, {"state": {"q": "second"}}),
    ],
)
def test_a_key_reused_with_another_body_after_its_redis_record_is_gone_is_a_422_and_nothing_is_stored(
    world: World, method: str, suffix: str, first: dict[str, Any], second: dict[str, Any]
) -> None:
    # Postgres keeps the key with what it appended, and acknowledged the second request as a replay of the
    # first without looking at its body: a 201/200 for a write that was thrown away.
    _twin_sessions(world)
    lane, _ = _clients(world)
    path = f"/api/v1/sessions/via-lane{suffix}"
    send = lane.post if method == "POST" else lane.put
    assert send(path, first, format="json", HTTP_IDEMPOTENCY_KEY="once").status_code in (200, 201)
    redis_client().flushdb()  # a restart, a flush, or the record's lifetime passed

    reused = send(path, second, format="json", HTTP_IDEMPOTENCY_KEY="once")
    retried = send(path, first, format="json", HTTP_IDEMPOTENCY_KEY="once")

    assert_error_shape(reused, 422, "unprocessable")
    assert retried.status_code in (200, 201)
    assert AgentSession.objects.get(session_id="via-lane").head_version == 1


def test_the_same_key_with_another_body_is_a_422_and_nothing_is_stored(world: World) -> None:
    _twin_sessions(world)
    lane, _ = _clients(world)
    path = "/api/v1/sessions/via-lane/events"
    lane.post(path, EVENT, format="json", HTTP_IDEMPOTENCY_KEY="clash")

    other = lane.post(path, {**EVENT, "payload": {"tool": "other"}}, format="json", HTTP_IDEMPOTENCY_KEY="clash")

    assert_error_shape(other, 422)
    assert AgentSession.objects.get(session_id="via-lane").head_version == 1


def test_a_keyed_request_that_fails_releases_its_key_for_a_corrected_retry(world: World) -> None:
    _twin_sessions(world)
    lane, _ = _clients(world)
    path = "/api/v1/sessions/via-lane/events"

    refused = lane.post(path, {**EVENT, "expected_version": 7}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = lane.post(path, {**EVENT, "expected_version": 7}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert served_by_hot_lane(refused) and refused.status_code == 409
    assert served_by_hot_lane(again) and again.status_code == 409  # not "in flight": the claim was released


def test_a_keyed_checkpoint_save_is_replayed_with_its_location(world: World) -> None:
    _twin_sessions(world)
    lane, _ = _clients(world)
    path = "/api/v1/sessions/via-lane/checkpoints"
    body = {"node_id": "plan", "state": {"step": 1}}

    first = lane.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="save-1")
    retry = lane.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="save-1")

    assert served_by_hot_lane(first) and not served_by_hot_lane(retry)
    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json() and retry["Location"] == first["Location"]


def test_a_latest_read_of_a_remembered_session_erased_since_is_404_or_the_new_sessions(world: World) -> None:
    lane, _ = _clients(world)
    world.acme.client.post("/api/v1/sessions", {"id": "again", "user_id": "first"}, format="json")
    first = lane.post("/api/v1/sessions/again/checkpoints", {"node_id": "a", "state": {"n": 1}}, format="json")
    assert first.status_code == 201
    AgentSession.objects.filter(session_id="again").update(erased_at="2026-01-01T00:00:00Z")

    gone = lane.get("/api/v1/sessions/again/checkpoints/latest")
    world.acme.client.post("/api/v1/sessions", {"id": "again", "user_id": "second"}, format="json")
    lane.post("/api/v1/sessions/again/checkpoints", {"node_id": "b", "state": {"n": 2}}, format="json")
    fresh = lane.get("/api/v1/sessions/again/checkpoints/latest")

    assert served_by_hot_lane(gone)
    assert_error_shape(gone, 404, "not_found")
    assert gone.json()["error"]["message"] == "No such session."
    assert served_by_hot_lane(fresh) and fresh.json()["state"] == {"n": 2}


def test_after_an_erasure_no_process_writes_as_the_person_from_memory(world: World) -> None:
    """A worker that remembers the session must not encrypt a payload for the erased person: that would make
    them a new data key before the statement refused the write."""
    from compliance_app.keys import destroy_keys, key_ids_of
    from compliance_app.models import PersonKey
    from tenants_app import keycache

    _twin_sessions(world, user_id="to-forget")
    lane, _ = _clients(world)
    assert lane.post("/api/v1/sessions/via-lane/events", EVENT, format="json").status_code == 201
    # What approving an erasure does to the session, the keys and the epoch (compliance_app.services).
    AgentSession.objects.filter(user_id="to-forget").update(erased_at="2026-01-01T00:00:00Z")
    destroy_keys(tenant_id=world.acme.tenant.pk, user_id="to-forget")
    keycache.invalidate_everywhere()

    response = lane.post("/api/v1/sessions/via-lane/events", EVENT, format="json")

    assert served_by_hot_lane(response)
    assert_error_shape(response, 404, "not_found")
    live_keys = PersonKey.objects.filter(pk__in=key_ids_of(tenant_id=world.acme.tenant.pk, user_id="to-forget"))
    assert not live_keys.filter(destroyed_at__isnull=True).exists()


def test_a_path_with_a_trailing_newline_is_not_taken_for_the_session(world: World) -> None:
    """Test clients strip control characters from URLs; a server hands over PATH_INFO as it came."""
    from io import BytesIO

    from memory_admin.wsgi import application

    _twin_sessions(world)
    body = b'{"type": "TOOL_EXECUTED", "payload": {}}'
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/sessions/via-lane/events\n",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "HTTP_AUTHORIZATION": f"Bearer {world.acme.raw_key}",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": BytesIO(body),
        "wsgi.url_scheme": "http",
    }
    started: list[str] = []

    b"".join(application(environ, lambda status, headers, exc_info=None: started.append(status)))

    assert started[0].startswith("404")
    assert AgentSession.objects.get(session_id="via-lane").head_version == 0


def test_an_expected_version_beyond_a_bigint_is_a_400_not_a_500(world: World) -> None:
    _twin_sessions(world)
    lane, _ = _clients(world)

    response = lane.post("/api/v1/sessions/via-lane/events", {**EVENT, "expected_version": 2**63}, format="json")

    assert_error_shape(response, 400)


def test_a_lane_answer_goes_out_before_its_live_update_which_is_published_when_the_server_closes_it(
    world: World,
) -> None:
    _twin_sessions(world)
    session = AgentSession.objects.get(session_id="via-lane")
    environ = _environ("/api/v1/sessions/via-lane/checkpoints", {"node_id": "plan", "state": {"messages": []}}, world)
    feed = redis_client().pubsub()
    feed.subscribe(channel_name(session_group(session.pk)))
    assert feed.get_message(timeout=2)["type"] == "subscribe"
    started: list[str] = []
    lane = HotLane(_unused, hot_routes())

    answer = lane.serve(environ, lambda status, headers, exc_info=None: started.append(status))

    assert answer is not None and started == ["201 Created"]
    assert Checkpoint.objects.filter(session=session).count() == 1  # stored (and committed) before answering
    assert drain(feed, 1, timeout=0.5) == []  # the dashboard's update waits for the response to be sent
    answer.close()  # type: ignore[attr-defined]
    (message,) = drain(feed, 1)
    feed.close()
    assert message["type"] == "checkpoint.saved" and message["checkpoint"] == orjson.loads(b"".join(answer))["id"]


def test_what_a_request_handed_to_django_published_in_the_lane_is_not_held(world: World) -> None:
    _twin_sessions(world)
    session = AgentSession.objects.get(session_id="via-lane")
    feed = redis_client().pubsub()
    feed.subscribe(channel_name(session_group(session.pk)))
    assert feed.get_message(timeout=2)["type"] == "subscribe"

    def announce_then_hand_over(request: Any, arguments: Any) -> Any:
        publish([session_group(session.pk)], {"type": "test.announced", "tenant": str(session.tenant_id)})
        raise Fallback

    route = HotRoute(
        "POST", "/api/v1/sessions/{session_id}/events", "api:session-events", no_arguments, announce_then_hand_over
    )
    environ = _environ("/api/v1/sessions/via-lane/events", EVENT, world)

    answer = HotLane(_unused, [route]).serve(environ, lambda *args: None)

    assert answer is None
    assert [message["type"] for message in drain(feed, 1)] == ["test.announced"]
    feed.close()


def test_through_the_web_server_each_write_the_lane_serves_is_announced_on_the_live_feed(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    with (
        running(web_server(workers=1, threads=2)) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=10) as client,
    ):
        assert client.post("/api/v1/sessions", json={"id": "announced", "user_id": "u"}).status_code == 201
        thread = "/api/v1/langgraph/threads/lg-announced/saves"
        assert client.post(thread, json=_step("1f0-0001", None)).status_code == 200
        feeds = redis_client().pubsub()
        for session in AgentSession.objects.filter(session_id__in=["announced", "lg-announced"]):
            feeds.subscribe(channel_name(session_group(session.pk)))
            assert feeds.get_message(timeout=2)["type"] == "subscribe"

        answers = [
            client.post("/api/v1/sessions/announced/checkpoints", json={"node_id": "plan", "state": {"step": 1}}),
            client.post("/api/v1/sessions/announced/events", json=EVENT),
            client.post(thread, json=_step("1f0-0002", "1f0-0001")),
        ]

        assert [answer.status_code for answer in answers] == [201, 201, 200]
        received = sorted(message["type"] for message in drain(feeds, 3))
        feeds.close()
    assert received == ["checkpoint.saved", "event.appended", "langgraph.checkpoint.saved"]


def _environ(path: str, body: dict[str, Any], world: World) -> dict[str, Any]:
    """What the web server hands the lane for an agent's POST."""
    request: Any = APIRequestFactory().post(
        path, body, format="json", HTTP_AUTHORIZATION=f"Bearer {world.acme.raw_key}"
    )
    return dict(request.environ)


def _unused(environ: dict[str, Any], start_response: Any) -> Any:
    raise AssertionError("not called: the test serves through the lane only")


def test_through_the_web_server_a_chunked_body_is_read_and_an_oversized_one_is_a_413(world: World) -> None:
    # Django reads no body without a Content-Length: a chunked request looked empty (a 400 saying so).
    headers = {"Authorization": f"Bearer {world.acme.raw_key}", "Content-Type": "application/json"}
    with (
        running(web_server(workers=1, threads=2, env={"API_MAX_BODY_BYTES": "4096"})) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=10) as client,
    ):
        assert client.post("/api/v1/sessions", json={"id": "chunked", "user_id": "u"}).status_code == 201
        body = orjson.dumps(EVENT)

        appended = client.post("/api/v1/sessions/chunked/events", content=iter([body[:10], body[10:]]))
        oversized = client.post("/api/v1/sessions/chunked/events", content=iter([body, b" " * 5000]))

    assert appended.status_code == 201, appended.content
    assert oversized.status_code == 413, oversized.content
    assert Event.objects.filter(session__session_id="chunked").count() == 1


def test_the_lane_writes_line_separators_and_floats_as_drfs_renderer_does(world: World) -> None:
    # DRF escapes U+2028/U+2029 and writes floats with the json module (1e-07); orjson wrote them raw and 1e-7,
    # and a window rebuilt from Postgres disagreed with the same window read from Redis.
    _twin_sessions(world)
    message = {"messages": [{"role": "user", "content": "a\u2028b\u2029c", "metadata": {"x": 1e-7, "y": 2.5}}]}
    _both(world, "POST", "/context/messages", message)
    bodies = []
    for flush in (False, True):
        if flush:
            redis_client().flushdb()
        lane_response, django_response = _both(world, "GET", "/context")
        _same_answer(lane_response, django_response)
        bodies += [lane_response.content, django_response.content]

    for body in bodies:
        assert b"a\\u2028b\\u2029c" in body and b'"x":1e-07' in body, body
        assert "\u2028".encode() not in body
    lane, _ = _clients(world)
    refused = lane.post(
        "/api/v1/sessions/via-lane/events",
        {"type": "STATE_PATCHED", "payload": {"patch": [{"op": "remove", "path": "/a\u2028"}]}},
        format="json",
    )
    assert served_by_hot_lane(refused) and refused.status_code == 400
    assert "\u2028".encode() not in refused.content


# --- metrics ------------------------------------------------------------------------------------------------


def _http_metrics() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every django-prometheus request and response series by name and labels, but for what differs by nature:
    when a series was created and how long a request took (how many requests were timed is kept)."""
    found = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples if metric.name.startswith("django_http") else ():
            if sample.name.endswith("_created") or ("latency" in sample.name and not sample.name.endswith("_count")):
                continue
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _moved(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    return {key: value - before.get(key, 0) for key, value in after.items() if value != before.get(key, 0)}


@pytest.mark.parametrize(
    "headers", [{}, {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}]
)
@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_an_append_served_by_the_lane_moves_every_django_metric_as_the_same_append_served_by_django(
    world: World, headers: dict[str, Any]
) -> None:
    # The lane fed only some of them: no transport, body sizes, charset or latency including middleware.
    for session_id in ("twin-a", "twin-b"):  # ids of one length: answers of one size
        created = world.acme.client.post("/api/v1/sessions", {"id": session_id, "user_id": "u"}, format="json")
        assert created.status_code == 201
    lane, django = _clients(world)

    before = _http_metrics()
    by_lane = lane.post("/api/v1/sessions/twin-a/context/messages", MESSAGE, format="json", **headers)
    between = _http_metrics()
    by_django = django.post("/api/v1/sessions/twin-b/context/messages", MESSAGE, format="json", **headers)
    after = _http_metrics()

    assert served_by_hot_lane(by_lane) and not served_by_hot_lane(by_django)
    assert by_lane.status_code == by_django.status_code == 201
    assert len(by_lane.content) == len(by_django.content)
    moved = _moved(before, between)
    assert moved == _moved(between, after)
    transport = "https" if headers else "http"
    assert moved[("django_http_requests_total_by_transport_total", (("transport", transport),))] == 1
    assert {name for name, _ in moved} >= {
        "django_http_requests_total_by_view_transport_method_total",
        "django_http_requests_latency_including_middlewares_seconds_count",
        "django_http_requests_body_total_bytes_sum",
        "django_http_responses_body_total_bytes_sum",
        "django_http_responses_total_by_charset_total",
        "django_http_responses_total_by_templatename_total",  # "None": DRF's responses have no template
    }
