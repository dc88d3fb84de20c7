"""The OpenAPI schema is the truth: it lists every route and method, and every successful answer validates
against the schema of its operation and status (documented fields only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]

from tests.api.catalogue import ROUTES, Route, calls, params_for
from tests.api.recipes import AcmeObjects, Call, real_call, send, why_not_callable
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

    assert not problems, "\n".join(problems)


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
    if missing.status_code == 404:  # the suffix may make it another route's path, which answers otherwise
        problems += list(_errors(openapi, operation, 404, missing.json()))
    assert not problems, "\n".join(problems)


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


@pytest.mark.parametrize(
    "suffix", ["/latest", "/{checkpoint_id}", "/by-sequence/{sequence}", "/diff"], ids=lambda suffix: suffix
)
def test_the_checkpoint_reads_document_the_409_of_a_broken_chain(openapi: dict[str, Any], suffix: str) -> None:
    responses = openapi["paths"][f"/api/v1/sessions/{{session_id}}/checkpoints{suffix}"]["get"]["responses"]
    assert "integrity_failure" in responses["409"]["description"]
