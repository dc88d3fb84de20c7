"""The OpenAPI schema is the truth: it lists every route and method, and every successful answer validates
against the schema of its operation and status (documented fields only). Its headers too: a header documented
as required is on every answer of its status, and the API's own headers (ETag, Location, Retry-After, …) are
documented wherever they are sent, successes, replays and refusals alike."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]

from langgraph_app.api.serializers import MAX_SAVES, MAX_STORE_OPS
from memories_app.embeddings import reset_embedder
from memory_admin.api import idempotency
from sessions_app.state import CUSTOM_EVENT_TYPE
from tenants_app.services import issue_api_key
from tests.api.catalogue import ROUTES, Route, calls, params_for
from tests.api.recipes import AcmeObjects, Call, real_call, send, send_raw, why_no_path, why_not_callable
from tests.clients import AgentClient

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def openapi(django_db_setup: None, django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = AgentClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema: dict[str, Any] = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    return schema


def json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema object -> JSON Schema: `nullable` becomes a null type, objects list their fields only."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: ({name: json_schema(item) for name, item in value.items()} if key == "properties" else json_schema(value))
        for key, value in node.items()
        if key not in ("nullable", "example", "readOnly", "writeOnly", "discriminator")
    }
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable"):
        if "type" in out and "enum" not in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _errors(schema: dict[str, Any], operation: dict[str, Any], status: int, body: Any) -> Iterator[str]:
    responses = operation.get("responses", {})
    documented = responses.get(str(status))
    if documented is None:
        yield f"status {status} is not documented (documented: {sorted(responses)})"
        return
    content = documented.get("content", {}).get("application/json")
    if content is None:
        if body is not None:
            yield f"status {status} is documented without a JSON body, but one came: {str(body)[:200]}"
        return
    root = {**json_schema(content["schema"]), "components": json_schema(schema.get("components", {}))}
    validator = Draft202012Validator(root, format_checker=FormatChecker())
    for error in validator.iter_errors(body):
        where = "/".join(map(str, error.absolute_path))
        yield f"at /{where}: {error.message[:300]}"


# The API's own headers: wherever one is sent, the schema documents it on that answer's status.
OWN_HEADERS = (
    "ETag",
    "Location",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "Idempotent-Replayed",
    "Memory-Merged",
    "X-Archive-SHA256",
    "X-Request-ID",
)


def _resolved(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    reference = node.get("$ref")
    if reference is None:
        return node
    found: Any = schema
    for part in reference.removeprefix("#/").split("/"):
        found = found[part]
    return _resolved(schema, found)


def _header_value(text: str, header_schema: dict[str, Any]) -> Any:
    """A header's text as its schema's type reads it (a header is text on the wire)."""
    if header_schema.get("type") == "integer" and re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    return text


def _header_errors(schema: dict[str, Any], operation: dict[str, Any], response: Any) -> Iterator[str]:
    status = response.status_code
    documented = operation["responses"].get(str(status), {}).get("headers", {})
    headers = {name.lower(): _resolved(schema, header) for name, header in documented.items()}
    for name, header in headers.items():
        if not response.has_header(name):
            if header.get("required"):
                yield f"{status}: the required header {name} is missing"
            continue
        header_schema = json_schema(_resolved(schema, header.get("schema", {})))
        value = _header_value(response[name], header_schema)
        for error in Draft202012Validator(header_schema).iter_errors(value):
            yield f"{status}: header {name}: {response[name]!r}: {error.message[:200]}"
    for name in OWN_HEADERS:
        if response.has_header(name) and name.lower() not in headers:
            yield f"{status}: {name} is sent but not documented (documented: {sorted(documented)})"


@pytest.mark.parametrize("route", [pytest.param(route, id=route.template) for route in ROUTES])
def test_every_route_and_method_is_in_the_schema(route: Route, openapi: dict[str, Any]) -> None:
    assert route.template in openapi["paths"]
    documented = {method.upper() for method in openapi["paths"][route.template]}
    assert set(route.methods) <= documented


def test_the_schema_documents_no_route_the_api_does_not_have(openapi: dict[str, Any]) -> None:
    templates = {route.template for route in ROUTES}
    assert {path for path in openapi["paths"] if path.startswith("/api/v1/")} <= templates


# Failing now, reported, and reproduced in test_found_bugs.py: drop an entry when its bug is fixed.
REPORTED_SCHEMA_BUGS: set[tuple[str, str]] = set()


@pytest.mark.parametrize(
    ("route", "method"),
    params_for([(r, m) for r, m in calls() if (r.name, m) not in REPORTED_SCHEMA_BUGS], skip=why_not_callable),
)
def test_a_successful_answer_matches_its_schema(
    route: Route, method: str, objs: AcmeObjects, openapi: dict[str, Any]
) -> None:
    response = send(objs.client, method, real_call(route, method, objs))
    assert 200 <= response.status_code < 300, response.content[:300]
    operation = openapi["paths"][route.template][method.lower()]
    is_json = response.get("Content-Type", "").startswith("application/json")
    body = response.json() if response.content and is_json else None

    problems = list(_errors(openapi, operation, response.status_code, body))
    problems += _header_errors(openapi, operation, response)

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("route", "method"),
    params_for(calls(methods=("POST", "PUT", "PATCH", "DELETE")), skip=why_not_callable),
)
def test_a_replayed_write_says_so_in_a_header_its_schema_documents(
    route: Route, method: str, objs: AcmeObjects, openapi: dict[str, Any]
) -> None:
    call = real_call(route, method, objs)
    key = f"replay-{uuid.uuid4()}"
    first = send(objs.client, method, call, HTTP_IDEMPOTENCY_KEY=key)
    replay = send(objs.client, method, call, HTTP_IDEMPOTENCY_KEY=key)
    operation = openapi["paths"][route.template][method.lower()]

    assert 200 <= first.status_code < 300, first.content[:300]
    assert (replay.status_code, replay.get("Idempotent-Replayed")) == (first.status_code, "true")
    assert not list(_header_errors(openapi, operation, replay))


def test_the_validator_refuses_an_answer_that_breaks_the_schema(openapi: dict[str, Any]) -> None:
    operation = openapi["paths"]["/api/v1/sessions/{session_id}"]["get"]
    broken = {"id": "s-1", "user_id": 7, "status": "sleeping", "surprise": True}

    problems = list(_errors(openapi, operation, 200, broken))

    assert any("user_id" in problem for problem in problems)
    assert any("surprise" in problem for problem in problems)
    assert any("version" in problem for problem in problems)  # a required field is missing


@pytest.mark.parametrize(("route", "method"), params_for(calls(), skip=why_not_callable))
def test_a_refusal_is_documented_and_matches_the_error_schema(
    route: Route, method: str, objs: AcmeObjects, openapi: dict[str, Any]
) -> None:
    call = real_call(route, method, objs)
    operation = openapi["paths"][route.template][method.lower()]

    unauthenticated = send(AgentClient(), method, call)
    missing = send(objs.client, method, Call(url=f"{call.url}-missing", body=call.body, query=call.query))

    assert unauthenticated.status_code == 401
    problems = list(_errors(openapi, operation, 401, unauthenticated.json()))
    problems += _header_errors(openapi, operation, unauthenticated)
    if missing.status_code == 404:  # the suffix may make it another route's path, which answers otherwise
        problems += list(_errors(openapi, operation, 404, missing.json()))
        problems += _header_errors(openapi, operation, missing)
    assert not problems, "\n".join(problems)


def _why_not(route: Route, method: str) -> str | None:
    return why_not_callable(route, method) if method != "GET" else why_no_path(route, method)


@pytest.mark.parametrize(("route", "method"), params_for(calls(), skip=_why_not))
def test_a_429_carries_the_headers_its_schema_documents(
    route: Route, method: str, objs: AcmeObjects, openapi: dict[str, Any]
) -> None:
    call = real_call(route, method, objs)
    operation = openapi["paths"][route.template][method.lower()]
    _, raw_key = issue_api_key(tenant=objs.agent.tenant, name="limited")
    limited = AgentClient()
    limited.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    if 60 - time.time() % 60 < 2:  # budgets are per clock minute: both requests in one
        time.sleep(2)
    with override_settings(API_RATE_LIMIT_PER_MINUTE=1):
        send(limited, method, call)
        refused = send(limited, method, call)

    assert refused.status_code == 429
    assert refused.has_header("Retry-After")
    assert not list(_header_errors(openapi, operation, refused))


@pytest.mark.parametrize(
    ("route", "method"),
    params_for(calls(methods=("POST", "PUT", "PATCH", "DELETE")), skip=why_not_callable),
)
def test_a_409_for_a_key_still_in_flight_carries_the_headers_its_schema_documents(
    route: Route, method: str, objs: AcmeObjects, openapi: dict[str, Any]
) -> None:
    call = real_call(route, method, objs)
    body = json.dumps(call.body).encode() if call.body is not None else b""
    key = f"in-flight-{uuid.uuid4()}"
    assert idempotency.take(idempotency.new_claim(objs.agent.tenant.pk, method, call.url, key, body))

    duplicate = send(objs.client, method, call, HTTP_IDEMPOTENCY_KEY=key)

    assert duplicate.status_code == 409, duplicate.content[:300]
    assert duplicate.has_header("Retry-After")
    assert not list(_header_errors(openapi, openapi["paths"][route.template][method.lower()], duplicate))


def test_a_503_carries_the_headers_its_schema_documents(
    objs: AcmeObjects, openapi: dict[str, Any], unused_tcp_port: int
) -> None:
    unreachable = {
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{unused_tcp_port}/v1",
        "OPENAI_MAX_RETRIES": 0,
    }
    body = {"scope": "user", "user_id": "u-acme-alice", "content": "Reads the small print."}
    with override_settings(**unreachable):
        reset_embedder()
        refused = objs.client.post("/api/v1/memories", body, format="json")
    reset_embedder()

    assert refused.status_code == 503, refused.content[:300]
    assert refused.has_header("Retry-After")
    assert not list(_header_errors(openapi, openapi["paths"]["/api/v1/memories"]["post"], refused))


def test_the_header_check_refuses_an_undocumented_etag_and_a_missing_required_header(
    openapi: dict[str, Any], objs: AcmeObjects
) -> None:
    read = objs.client.get(objs.session_url)
    listing = openapi["paths"]["/api/v1/sessions"]["get"]  # documents no ETag
    detail = openapi["paths"]["/api/v1/sessions/{session_id}"]["get"]
    del read["ETag"]

    assert any(
        "ETag is sent but not documented" in problem
        for problem in _header_errors(openapi, listing, objs.client.get(objs.session_url))
    )
    assert any("required header etag is missing" in problem for problem in _header_errors(openapi, detail, read))


def test_the_error_schema_refuses_a_body_that_is_not_the_one_error_shape(openapi: dict[str, Any]) -> None:
    operation = openapi["paths"]["/api/v1/sessions/{session_id}"]["get"]

    problems = list(_errors(openapi, operation, 404, {"detail": "Not found."}))

    assert any("error" in problem for problem in problems)


def test_the_checkpoint_save_body_is_the_checkpoint_apis_own_not_langgraphs(openapi: dict[str, Any]) -> None:
    # Two serializers named CheckpointIn shared one component: the save documented LangGraph's body.
    operation = openapi["paths"]["/api/v1/sessions/{session_id}/checkpoints"]["post"]
    reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = openapi["components"]["schemas"][reference.rsplit("/", 1)[1]]

    assert {"node_id", "state", "patch"} <= set(body["properties"]) and "checkpoint_id" not in body["properties"]


# Lists the service bounds, each with its schema path: (operation, the list's property, min, max, a valid item).
_BOUNDED_LISTS = [
    (
        ("/api/v1/sessions/{session_id}/events", "post"),
        "events",
        1,
        settings.EVENT_BATCH_MAX,
        {"type": "NODE_TRANSITION", "payload": {"node": "triage"}},
    ),
    (
        ("/api/v1/memories/batch", "post"),
        "memories",
        1,
        settings.MEMORY_BATCH_MAX,
        {"scope": "global", "content": "Refunds take five working days."},
    ),
    (
        ("/api/v1/langgraph/threads/{session_id}/saves", "post"),
        "ops",
        1,
        MAX_SAVES,
        {"op": "writes", "checkpoint_id": "1f0-0001", "task_id": "t", "writes": []},
    ),
    (("/api/v1/langgraph/store/batch", "post"), "ops", 1, MAX_STORE_OPS, {"op": "get", "namespace": ["a"], "key": "b"}),
]


@pytest.mark.parametrize(
    ("operation", "field", "low", "high", "item"),
    [pytest.param(*bounded, id=f"{bounded[0][0]} {bounded[1]}") for bounded in _BOUNDED_LISTS],
)
def test_a_list_body_states_the_bounds_the_service_enforces(
    operation: tuple[str, str],
    field: str,
    low: int,
    high: int,
    item: dict[str, Any],
    objs: AcmeObjects,
    openapi: dict[str, Any],
) -> None:
    path, method = operation
    body = _resolved(openapi, openapi["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"])
    documented = body["properties"][field]
    url = path.format(session_id=objs.session_id)

    empty = objs.client.post(url, {field: []}, format="json")
    over = objs.client.post(url, {field: [item] * (high + 1)}, format="json")

    assert (documented.get("minItems"), documented.get("maxItems")) == (low, high)
    assert (empty.status_code, over.status_code) == (400, 400), (empty.content[:300], over.content[:300])


def test_an_event_type_is_documented_with_the_pattern_the_service_checks(
    objs: AcmeObjects, openapi: dict[str, Any]
) -> None:
    event = openapi["components"]["schemas"]["EventInRequest"]["properties"]["type"]
    single = openapi["components"]["schemas"]["EventAppendInRequest"]["properties"]["type"]
    url = f"{objs.session_url}/events"

    custom = objs.client.post(url, {"type": "billing.refund:issued-2", "payload": None}, format="json")
    malformed = objs.client.post(url, {"type": "2nd-try", "payload": None}, format="json")

    assert event["pattern"] == single["pattern"] == CUSTOM_EVENT_TYPE.pattern
    assert re.fullmatch(event["pattern"], "billing.refund:issued-2") and not re.fullmatch(event["pattern"], "2nd-try")
    assert (custom.status_code, malformed.status_code) == (201, 400), malformed.content[:300]


def test_the_session_version_is_described_as_the_etag_which_appends_do_not_move(
    objs: AcmeObjects, openapi: dict[str, Any]
) -> None:
    described = openapi["components"]["schemas"]["SessionOut"]["properties"]["version"]["description"]
    before = objs.client.get(objs.session_url)
    appended = objs.client.post(f"{objs.session_url}/events", {"type": "X", "payload": None}, format="json")
    after = objs.client.get(objs.session_url)

    assert appended.status_code == 201
    assert (after["ETag"], after.json()["version"]) == (before["ETag"], before.json()["version"])
    assert after.json()["head_version"] == before.json()["head_version"] + 1
    assert "ETag" in described and "Appends move `head_version`, not this" in described


def test_every_write_documents_its_idempotency_key_and_every_operation_its_api_key(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["bearerApiKey"]["scheme"] == "bearer" and schemes["headerApiKey"]["name"] == "X-API-Key"
    for path, operations in openapi["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            assert operation["security"] == [{"bearerApiKey": []}, {"headerApiKey": []}], (path, method)
            headers = {
                parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "header"
            }
            assert ("Idempotency-Key" in headers) == (method in ("post", "put", "patch", "delete")), (path, method)
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):  # a view's own refusals carry the one error shape too
                    assert "Error" in answer["content"]["application/json"]["schema"]["$ref"], (path, method, status)


@pytest.mark.parametrize(("route", "method"), params_for(calls(methods=("POST", "PUT", "PATCH")), skip=why_no_path))
def test_a_write_documents_its_body_as_required_as_an_empty_one_is_a_400(
    route: Route, method: str, objs: AcmeObjects, openapi: dict[str, Any]
) -> None:
    # A client generated from the schema leaves an optional body out (completing an operation without a result,
    # say), and the API refuses every write without one (memory_admin.api.views.AgentAPIView).
    operation = openapi["paths"][route.template][method.lower()]

    empty = send_raw(objs.client, method, real_call(route, "GET", objs).url, b"")

    assert empty.status_code == 400 and "body is empty" in empty.json()["error"]["message"], empty.content[:300]
    assert operation.get("requestBody", {}).get("required") is True


@pytest.mark.parametrize(
    "suffix", ["/latest", "/{checkpoint_id}", "/by-sequence/{sequence}", "/diff"], ids=lambda suffix: suffix
)
def test_the_checkpoint_reads_document_the_409_of_a_broken_chain(openapi: dict[str, Any], suffix: str) -> None:
    responses = openapi["paths"][f"/api/v1/sessions/{{session_id}}/checkpoints{suffix}"]["get"]["responses"]
    assert "integrity_failure" in responses["409"]["description"]
