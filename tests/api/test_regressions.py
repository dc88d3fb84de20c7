"""Regressions: bugs the generic API suites found, each pinned by the request that exposed it."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from langgraph_app.api.serializers import NAMESPACE_MAX_LENGTH
from langgraph_app.models import StoreItem
from tests.api.catalogue import WRITE_METHODS, Route, calls, params_for
from tests.api.checks import assert_error_shape, stored_state
from tests.api.recipes import BODIES, AcmeObjects, real_call, send, send_raw, why_no_path, why_not_callable
from tests.api.test_bad_input import _refused, _variants
from tests.api.test_schema_conformance import _errors, openapi  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db

WRITE_CALLS = calls(methods=WRITE_METHODS)


# 1. An empty body is not refused: DRF never calls the strict parser for a zero-length body, so a write whose
#    fields are all optional runs with {} (an operation gets completed with result null, a promotion job is queued,
#    a profile is created).
@pytest.mark.parametrize(("route", "method"), params_for(WRITE_CALLS, skip=why_no_path))
def test_an_empty_body_is_a_400_and_stores_nothing(route: Route, method: str, objs: AcmeObjects) -> None:
    url = real_call(route, "GET", objs).url
    before = stored_state()

    response = send_raw(objs.client, method, url, b"", content_type="application/json")

    assert_error_shape(response, 400)
    assert stored_state() == before


# 2. A number literal too large for a float (1e999) parses to float('inf'): the parser refuses `Infinity` but not
#    this, and string fields then store the text "inf" (user_id, event type, node_id, memory content, …).
@pytest.mark.parametrize(("route", "method"), params_for(WRITE_CALLS, skip=why_not_callable))
def test_a_number_too_large_for_a_float_is_refused_and_stores_nothing(
    route: Route, method: str, objs: AcmeObjects
) -> None:
    call = real_call(route, method, objs)
    assert call.body is not None
    before = stored_state()
    problems = []
    for description, raw in _variants(
        "a number too large for a float", call.body, BODIES[(route.name, method)].any_json
    ):
        problem = _refused(send_raw(objs.client, method, call.url, raw, content_type="application/json"))
        if problem:
            problems.append(f"{description}: {problem}")
    assert not problems, "\n".join(problems)
    assert stored_state() == before


# 3. A NUL character in the user id of /users/{user_id}/profile reaches PostgreSQL: a 500 (DataError).
@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_a_nul_character_in_a_profiles_user_id_is_a_4xx_not_a_500(method: str, objs: AcmeObjects) -> None:
    body = b'{"preferences": {"a": 1}}' if method == "PATCH" else b""
    response = send_raw(objs.client, method, "/api/v1/users/a%00b/profile", body, content_type="application/json")
    assert_error_shape(response)
    assert 400 <= response.status_code < 500


# 4. Answers that do not match the OpenAPI schema (found by test_schema_conformance).
@pytest.mark.parametrize(
    ("name", "method"), [("memories", "GET"), ("memories-batch", "POST"), ("memory-history", "GET")]
)
def test_the_memories_answers_match_their_schema(
    name: str,
    method: str,
    objs: AcmeObjects,
    openapi: dict[str, Any],  # noqa: F811
) -> None:
    route = next(route for route in calls() if route[0].name == name)[0]
    response = send(objs.client, method, real_call(route, method, objs))
    operation = openapi["paths"][route.template][method.lower()]
    problems = list(_errors(openapi, operation, response.status_code, response.json()))
    assert not problems, "\n".join(problems)


# 5. An Idempotency-Key used once on one endpoint silently swallows a different write to another endpoint of the
#    same session: the Postgres fallback (Event.idempotency_key) is scoped to the session, not to the endpoint and
#    body, so the second write answers 2xx with the FIRST write's events and appends nothing.
@pytest.mark.parametrize(
    ("second", "body"),
    [
        ("events", {"type": "NODE_TRANSITION", "payload": {"node": "refund"}}),
        ("tools/search", {"state": {"page": 9}}),
        ("context", {"messages": [{"role": "system", "content": "new summary"}]}),
    ],
)
def test_a_key_used_on_one_endpoint_does_not_swallow_a_write_to_another(
    second: str, body: dict[str, Any], objs: AcmeObjects
) -> None:
    headers: dict[str, Any] = {"HTTP_IDEMPOTENCY_KEY": "shared-key-1"}
    first = objs.client.post(
        f"{objs.session_url}/context/messages",
        {"messages": [{"role": "user", "content": "hi"}]},
        format="json",
        **headers,
    )
    assert first.status_code == 201
    head = objs.client.get(objs.session_url).json()["head_version"]

    method = "POST" if second == "events" else "PUT"
    answer = send_raw(
        objs.client,
        method,
        f"{objs.session_url}/{second}",
        json.dumps(body).encode(),
        content_type="application/json",
        **headers,
    )

    assert answer.status_code in (200, 201, 422)
    if answer.status_code != 422:
        assert objs.client.get(objs.session_url).json()["head_version"] == head + 1


# 6. A batch operation named by a list or an object (`{"op": []}`) raised TypeError (an unhashable key looked up
#    in the operations' table): a 500 from both lanes, for LangGraph saves and store batches. And a stored string
#    that looks numeric but holds an exponent PostgreSQL's numeric cannot take made every ordering filter on that
#    field a 500 for the whole tenant.
@pytest.mark.parametrize("op", [[], {}, ["put"], 1.5, None])
@pytest.mark.parametrize("path", ["/api/v1/langgraph/threads/lg-x/saves", "/api/v1/langgraph/store/batch"])
def test_a_batch_operation_named_by_something_else_than_text_is_a_400(path: str, op: Any, objs: AcmeObjects) -> None:
    before = stored_state()

    response = send_raw(
        objs.client, "POST", path, json.dumps({"ops": [{"op": op}]}).encode(), content_type="application/json"
    )

    assert_error_shape(response, 400)
    assert stored_state() == before


@pytest.mark.parametrize("stored", ["1e99999", "-2E-99999", "1e1001"])
def test_an_ordering_filter_over_a_huge_exponent_in_text_answers_instead_of_failing(
    stored: str, objs: AcmeObjects
) -> None:
    batch = "/api/v1/langgraph/store/batch"
    put = {"ops": [{"op": "put", "namespace": ["n"], "key": "k", "value": {"rank": stored}}]}
    assert objs.client.post(batch, put, format="json").status_code == 200
    search = {"ops": [{"op": "search", "namespace_prefix": ["n"], "filter": {"rank": {"$gt": 5}}}]}

    response = objs.client.post(batch, search, format="json")

    assert response.status_code == 200, response.content


# 7. Found by a review of the sessions API (2026-12-07): each of these answered 500.
#    - `version` / `after` checked with str.isdigit(), which takes "²" (int() refuses it) and a full-width "3"
#      (read as 3); and a number too long for int() or for a bigint.
@pytest.mark.parametrize("value", ["²", "①", "\uff13", "9" * 19, "9" * 5000, "-1", " 1"])
@pytest.mark.parametrize(("suffix", "name"), [("state", "version"), ("events", "after")])
def test_a_version_that_is_not_plain_ascii_digits_is_a_400(
    suffix: str, name: str, value: str, objs: AcmeObjects
) -> None:
    response = objs.client.get(f"/api/v1/sessions/{objs.session_id}/{suffix}", {name: value})

    assert_error_shape(response, 400)


def _cursor(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


#    - a cursor edited by hand: DRF decodes it and hands its position, unchecked, to the query.
@pytest.mark.parametrize(
    "cursor",
    [
        _cursor("p=abc"),
        _cursor("p=2026-13-45"),
        _cursor("p=\x00"),
        _cursor("p=1e400"),
        _cursor("p=1.5"),
        _cursor("o=x"),
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sessions",
        "/api/v1/sessions/{session}/events",
        "/api/v1/sessions/{session}/operations",
        "/api/v1/sessions/{session}/checkpoints",
        "/api/v1/memories",
        "/api/v1/erasure-requests",
        "/api/v1/export-requests",
    ],
)
def test_a_cursor_the_api_did_not_give_out_is_a_400(path: str, cursor: str, objs: AcmeObjects) -> None:
    assert objs.checkpoints  # the session, with checkpoints to page through

    response = objs.client.get(path.format(session=objs.session_id), {"cursor": cursor})

    assert_error_shape(response, 400)
    assert response.json()["error"]["details"] == {"field": "cursor"}


#    - a message role or a patch operation name given as an array or an object (looked up in a set: TypeError).
@pytest.mark.parametrize("bad", [[], {}, ["user"]])
def test_a_role_or_a_patch_operation_that_is_not_text_is_a_400_and_stores_nothing(bad: Any, objs: AcmeObjects) -> None:
    base = f"/api/v1/sessions/{objs.session_id}"
    before = stored_state()
    requests = [
        ("POST", f"{base}/context/messages", {"messages": [{"role": bad, "content": "x"}]}),
        ("PUT", f"{base}/context", {"messages": [{"role": bad, "content": "x"}]}),
        ("POST", f"{base}/events", {"type": "MESSAGE_ADDED", "payload": {"role": bad, "content": "x"}}),
        ("POST", f"{base}/events", {"type": "STATE_PATCHED", "payload": {"patch": [{"op": bad, "path": "/a"}]}}),
    ]
    for method, url, body in requests:
        assert_error_shape(send_raw(objs.client, method, url, json.dumps(body).encode()), 400)
    assert stored_state() == before


#    - OPTIONS on the views with a PUT and no queryset: DRF's metadata called get_object().
@pytest.mark.parametrize("suffix", ["", "/context", "/tools", "/tools/search", "/events", "/state", "/checkpoints"])
def test_options_describes_every_session_endpoint(suffix: str, objs: AcmeObjects) -> None:
    response = objs.client.options(f"/api/v1/sessions/{objs.session_id}{suffix}")

    assert response.status_code == 200, response.content
    assert response.json()["renders"] == ["application/json"]


#    - a tool name ending in a newline (`$` matches before a final newline) was taken, and an event could set
#      the state of a tool no URL can name.
def test_a_tool_name_must_match_its_pattern_to_the_end_in_the_url_and_in_events(objs: AcmeObjects) -> None:
    base = f"/api/v1/sessions/{objs.session_id}"
    before = stored_state()

    by_url = objs.client.put(f"{base}/tools/t%0A", {"state": 1}, format="json")
    by_event = objs.client.post(f"{base}/events", {"type": "TOOL_STATE_SET", "payload": {"tool": "a b"}}, format="json")

    assert_error_shape(by_url)
    assert_error_shape(by_event, 400)
    assert stored_state() == before


# 8. Found by a review of the LangGraph API (2026-12-07): 500s.
#    - a metadata filter holding NaN, Infinity or 1e400, and a listing position holding a NUL or a lone
#      surrogate (json.loads takes them; PostgreSQL does not);
@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("filter", '{"a": NaN}'),
        ("filter", '{"a": -Infinity}'),
        ("filter", '{"a": 1e400}'),
        ("filter", '{"a": "\\u0000"}'),
        ("after", '{"checkpoint_id": "\\u0000", "thread_id": "a", "checkpoint_ns": ""}'),
        ("after", '{"checkpoint_id": "x", "thread_id": "a", "checkpoint_ns": "\\ud800"}'),
    ],
)
def test_a_listing_parameter_that_postgres_cannot_take_is_a_400(parameter: str, value: str, objs: AcmeObjects) -> None:
    paths = ["/api/v1/langgraph/checkpoints"]
    if parameter == "filter":
        paths.append("/api/v1/langgraph/threads/lg-any/checkpoints")
    for path in paths:
        assert_error_shape(objs.client.get(path, {parameter: value}), 400)


#    - a store namespace longer, joined, than the column that holds it (each label was bounded, not the whole).
def test_a_store_namespace_longer_than_1024_characters_joined_is_a_400_in_both_lanes(objs: AcmeObjects) -> None:
    put = {"ops": [{"op": "put", "namespace": ["a" * 256] * 5, "key": "k", "value": {"a": 1}}]}
    before = stored_state()

    response = objs.client.post("/api/v1/langgraph/store/batch", put, format="json")

    assert_error_shape(response, 400)
    assert stored_state() == before
    assert StoreItem._meta.get_field("prefix").max_length == NAMESPACE_MAX_LENGTH


# 9. Found by a review of the memories API (2026-12-07): a person's id was trimmed by some endpoints and kept
#    as given by others, so ' zoe ''s profile facts became memories no search for ' zoe ' found, and an erasure
#    or export of ' zoe ' (kept exactly) missed what was filed under 'zoe'. Ids are kept exactly as given.
def test_a_persons_id_is_kept_exactly_as_given_by_every_endpoint(objs: AcmeObjects) -> None:
    client = objs.client
    memory = {"scope": "user", "user_id": " zoe ", "content": "Zoe likes tea"}
    assert client.post("/api/v1/memories", memory, format="json").status_code == 201
    assert client.post("/api/v1/sessions", {"id": "zoe-s", "user_id": " zoe "}, format="json").status_code == 201

    listed = client.get("/api/v1/memories", {"user_id": " zoe "}).json()["results"]
    sessions = client.get("/api/v1/sessions", {"user_id": " zoe "}).json()["results"]
    search = {"query": "tea", "scopes": ["user"], "user_id": " zoe "}
    found = client.post("/api/v1/memories/search", search, format="json").json()["results"]

    assert [item["user_id"] for item in listed] == [" zoe "]
    assert [item["id"] for item in sessions] == ["zoe-s"]
    assert [item["memory"]["content"] for item in found] == ["Zoe likes tea"]
    assert client.get("/api/v1/memories", {"user_id": "zoe"}).json()["results"] == []
    assert_error_shape(client.post("/api/v1/sessions", {"user_id": "   "}, format="json"), 400)
