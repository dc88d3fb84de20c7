"""How to call each catalogued route for real: acme's objects for its path parameters, a valid body per write.

`AcmeObjects` makes acme's objects through the API itself, each on first use, so a test pays only for the
objects its route needs. Path parameters are filled by name (`PARAMETERS`), so a new route whose parameters
are known is covered without a line here; a write needs a body recipe (`BODIES`) naming a valid request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from rest_framework.test import APIClient

from conftest import Agent
from tests.api.catalogue import WRITE_METHODS, Route

SESSION_ID = "s-acme-refund"
USER_ID = "u-acme-alice"
TOOL = "search"
JSON = "application/json"


def expect(response: Any, *statuses: int) -> Any:
    assert response.status_code in statuses, f"{response.status_code}: {response.content[:500]!r}"
    return response.json() if response.content else None


class AcmeObjects:
    """acme's session (with messages, events, tool state, an operation…), made through the API on first use."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.client: APIClient = agent.client

    def built(self, name: str) -> bool:
        return name in self.__dict__

    @cached_property
    def session_id(self) -> str:
        sessions = "/api/v1/sessions"
        body = {"id": SESSION_ID, "user_id": USER_ID, "metadata": {"topic": "billing"}}
        expect(self.client.post(sessions, body, format="json"), 201)
        messages = [
            {"role": "user", "content": "My card was charged twice."},
            {"role": "assistant", "content": "Let me check."},
        ]
        expect(
            self.client.post(f"{sessions}/{SESSION_ID}/context/messages", {"messages": messages}, format="json"), 201
        )
        events = [
            {"type": "NODE_TRANSITION", "payload": {"node": "triage"}},
            {"type": "STATE_PATCHED", "payload": {"patch": [{"op": "add", "path": "/ticket", "value": 42}]}},
        ]
        expect(self.client.post(f"{sessions}/{SESSION_ID}/events", {"events": events}, format="json"), 201)
        return SESSION_ID

    @property
    def session_url(self) -> str:
        return f"/api/v1/sessions/{self.session_id}"

    @cached_property
    def tool(self) -> str:
        body = {"state": {"query": "refund policy", "page": 1}}
        expect(self.client.put(f"{self.session_url}/tools/{TOOL}", body, format="json"), 200)
        return TOOL

    @cached_property
    def operation_id(self) -> str:
        body = {"name": "refund", "key": "refund-1", "params": {"amount_cents": 1299}}
        created = expect(self.client.post(f"{self.session_url}/operations", body, format="json"), 201)
        return str(created["id"])

    @cached_property
    def checkpoints(self) -> list[dict[str, Any]]:
        url = f"{self.session_url}/checkpoints"
        first = expect(self.client.post(url, {"node_id": "triage", "state": {"step": 1}}, format="json"), 201)
        second = expect(self.client.post(url, {"node_id": "answer", "state": {"step": 2}}, format="json"), 201)
        return [first, second]

    @cached_property
    def memory_id(self) -> str:
        body = {"scope": "user", "user_id": USER_ID, "content": "Prefers refunds to the original card."}
        return str(expect(self.client.post("/api/v1/memories", body, format="json"), 201)["id"])

    @cached_property
    def job_id(self) -> str:
        body = {"texts": ["Was charged twice in March."]}
        return str(expect(self.client.post(f"{self.session_url}/promote", body, format="json"), 202)["id"])

    @cached_property
    def erasure_id(self) -> str:
        """A verified erasure (filed through the API, approved and purged as staff and workers would)."""
        from compliance_app.services import approve_erasure
        from compliance_app.tasks import purge_erasure

        body = {"user_id": "u-acme-to-forget", "legal_basis": "gdpr_art_17"}
        request_id = str(expect(self.client.post("/api/v1/erasure-requests", body, format="json"), 201)["id"])
        approve_erasure(request_id=request_id, decided_by="staff:approver")
        purge_erasure(request_id)
        return request_id

    @cached_property
    def export_id(self) -> str:
        """A ready export (filed through the API, built as the worker would)."""
        from compliance_app.tasks import build_export

        body = {"user_id": USER_ID, "legal_basis": "gdpr_art_15"}
        export_id = str(expect(self.client.post("/api/v1/export-requests", body, format="json"), 201)["id"])
        build_export(export_id)
        return export_id

    @cached_property
    def langgraph(self) -> str:
        """acme's session as a LangGraph thread with two checkpoints of run "run-acme" (so that a prune has one
        to remove), and an item in its store."""
        _langgraph_thread(self)
        later = {**LANGGRAPH_CHECKPOINT, "checkpoint_id": "1f0-0002", "parent_checkpoint_id": "1f0-0001"}
        expect(self.client.post(f"/api/v1/langgraph/threads/{SESSION_ID}/checkpoints", later, format="json"), 201)
        item = {"op": "put", "namespace": ["prefs"], "key": "tone", "value": {"text": STORE_SECRET}, "index": False}
        expect(self.client.post("/api/v1/langgraph/store/batch", {"ops": [item]}, format="json"), 200)
        return self.session_id

    @cached_property
    def user_id(self) -> str:
        body = {"preferences": {"language": "en"}}
        expect(self.client.patch(f"/api/v1/users/{USER_ID}/profile", body, format="json"), 200)
        return USER_ID


# Path parameter name -> the acme object that fills it (building it, and what it needs, on first use).
PARAMETERS: dict[str, Callable[[AcmeObjects], str]] = {
    "session_id": lambda objs: objs.session_id,
    "tool": lambda objs: objs.tool,
    "operation_id": lambda objs: objs.operation_id,
    "checkpoint_id": lambda objs: str(objs.checkpoints[-1]["id"]),
    "sequence": lambda objs: str(objs.checkpoints[-1]["sequence"]),
    "memory_id": lambda objs: objs.memory_id,
    "job_id": lambda objs: objs.job_id,
    "user_id": lambda objs: objs.user_id,
    "request_id": lambda objs: objs.erasure_id,
    "export_id": lambda objs: objs.export_id,
}


@dataclass(frozen=True)
class Body:
    """A valid request body for one write, and which of its fields accept any JSON value at all."""

    make: Callable[[AcmeObjects], dict[str, Any]]
    any_json: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()

    @property
    def has_typed_fields(self) -> bool:
        """Whether some field refuses some JSON type (so a body with a wrong type exists to send)."""
        return bool(self.fields - self.any_json)


def _fixed(body: dict[str, Any], *any_json: str) -> Body:
    return Body(lambda objs: body, frozenset(any_json), frozenset(body))


BODIES: dict[tuple[str, str], Body] = {
    ("session-list", "POST"): _fixed({"user_id": "u-acme-bob", "metadata": {"channel": "chat"}}),
    ("session-detail", "PATCH"): _fixed({"status": "paused", "metadata": {"step": "refund"}}),
    ("session-context", "PUT"): _fixed({"messages": [{"role": "system", "content": "Summary: refund issued."}]}),
    ("session-context-messages", "POST"): _fixed({"messages": [{"role": "user", "content": "Thanks!"}]}),
    ("session-tool", "PUT"): _fixed({"state": {"query": "refund policy", "page": 2}}, "state"),
    ("session-events", "POST"): _fixed(
        {"type": "TOOL_EXECUTED", "payload": {"tool": "search", "result": {"hits": 3}}}, "payload"
    ),
    ("session-operations", "POST"): _fixed({"name": "email", "key": "email-1", "params": {"to": "alice"}}, "params"),
    ("session-operation-complete", "POST"): _fixed({"result": {"refund_id": "r-1"}}, "result"),
    ("session-operation-fail", "POST"): _fixed({"error": {"message": "card declined"}}, "error"),
    ("checkpoint-list", "POST"): _fixed({"node_id": "review", "state": {"step": 3}, "metadata": {"by": "agent"}}),
    ("memories", "POST"): _fixed({"scope": "user", "user_id": USER_ID, "content": "Speaks German at home."}),
    ("memories-batch", "POST"): _fixed(
        {
            "memories": [
                {"scope": "user", "user_id": USER_ID, "content": "Has a dog called Rex."},
                {"scope": "global", "content": "Refunds take five working days."},
            ]
        }
    ),
    ("memories-search", "POST"): _fixed({"query": "refund", "scopes": ["user"], "user_id": USER_ID, "k": 5}),
    ("memory", "PATCH"): _fixed({"content": "Prefers refunds by bank transfer."}),
    ("erasure-list", "POST"): _fixed(
        {
            "user_id": "u-acme-gone",
            "identifiers": ["gone@example.com"],
            "legal_basis": "gdpr_art_17",
            "note": "ticket 9",
        }
    ),
    ("export-list", "POST"): _fixed({"user_id": "u-acme-asks", "legal_basis": "gdpr_art_15"}),
    ("session-promote", "POST"): _fixed({"texts": ["Prefers phone calls."]}),
    ("user-profile", "PATCH"): _fixed({"facts": {"city": "Lyon"}, "preferences": {"tone": "formal"}}),
}

# LangGraph (langgraph_app): a checkpoint of acme's session as a thread, with one channel blob.
STORE_SECRET = "Speaks to acme's agents in French."
LANGGRAPH_CHECKPOINT = {
    "checkpoint_ns": "",
    "checkpoint_id": "1f0-0001",
    "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"topic": 1}, "versions_seen": {}},
    "metadata": {"source": "input", "step": -1, "run_id": "run-acme"},
    "blobs": [{"channel": "topic", "version": "1", "type": "json", "blob": "ImJpbGxpbmci"}],
}


def _langgraph_thread(objs: AcmeObjects) -> str:
    """acme's session with one LangGraph checkpoint on it (stored once; storing it again changes nothing)."""
    url = f"/api/v1/langgraph/threads/{objs.session_id}/checkpoints"
    expect(objs.client.post(url, LANGGRAPH_CHECKPOINT, format="json"), 201)
    return objs.session_id


def _langgraph_writes(objs: AcmeObjects) -> dict[str, Any]:
    _langgraph_thread(objs)
    return {
        "checkpoint_ns": "",
        "checkpoint_id": "1f0-0001",
        "task_id": "task-1",
        "task_path": "~__pregel_pull, answer",
        "writes": [{"channel": "topic", "type": "json", "blob": "InJlZnVuZCI="}],
    }


def _langgraph_copy(objs: AcmeObjects) -> dict[str, Any]:
    _langgraph_thread(objs)
    return {"target_thread_id": "s-acme-refund-copy"}


BODIES.update(
    {
        ("langgraph-checkpoints", "POST"): _fixed(LANGGRAPH_CHECKPOINT),
        ("langgraph-writes", "POST"): Body(
            _langgraph_writes, fields=frozenset({"checkpoint_ns", "checkpoint_id", "task_id", "task_path", "writes"})
        ),
        ("langgraph-saves", "POST"): _fixed(
            {
                "ops": [
                    {
                        "op": "writes",
                        "checkpoint_id": "1f0-0001",
                        "task_id": "task-1",
                        "writes": [{"channel": "topic", "type": "json", "blob": "InJlZnVuZCI="}],
                    },
                    {**LANGGRAPH_CHECKPOINT, "op": "checkpoint", "checkpoint_id": "1f0-0002"},
                ]
            }
        ),
        ("langgraph-copy", "POST"): Body(_langgraph_copy, fields=frozenset({"target_thread_id"})),
        ("langgraph-prune", "POST"): _fixed({"thread_ids": [SESSION_ID], "strategy": "keep_latest"}),
        ("langgraph-delete-for-runs", "POST"): _fixed({"run_ids": ["run-acme"]}),
        ("langgraph-store-batch", "POST"): _fixed(
            {
                "ops": [
                    {"op": "put", "namespace": ["prefs"], "key": "tone", "value": {"text": "formal"}, "index": False},
                    {"op": "get", "namespace": ["prefs"], "key": "tone"},
                ]
            }
        ),
    }
)

# Writes that create the object at a client-chosen path when it does not exist: another tenant gets its own.
UPSERTS = {
    ("user-profile", "PATCH"),
    ("langgraph-checkpoints", "POST"),
    ("langgraph-writes", "POST"),
    ("langgraph-saves", "POST"),
}

# Query strings a GET needs to succeed.
QUERIES: dict[tuple[str, str], Callable[[AcmeObjects], dict[str, str]]] = {
    ("checkpoint-diff", "GET"): lambda objs: {
        "from": str(objs.checkpoints[0]["id"]),
        "to": str(objs.checkpoints[1]["id"]),
    },
    ("session-recall", "GET"): lambda objs: {"query": "refund"},
}


# Objects a route reads beyond its path parameters (built before a real call).
NEEDS: dict[str, tuple[str, ...]] = {
    "checkpoint-latest": ("checkpoints",),
    "checkpoint-diff": ("checkpoints",),
}


def unfillable(route: Route) -> list[str]:
    return [name for name in route.params if name not in PARAMETERS]


def why_not_callable(route: Route, method: str) -> str | None:
    """Why the suites cannot yet make a real call of this route (None: they can)."""
    missing = unfillable(route)
    if missing:
        return f"{route.app}: no filler for path parameter(s) {', '.join(missing)}"
    if method in WRITE_METHODS and (route.name, method) not in BODIES:
        return f"{route.app}: no request-body recipe for {method} {route.name}"
    return None


def why_no_path(route: Route, method: str) -> str | None:
    """Why the path of this route cannot be filled yet (bodies not needed)."""
    missing = unfillable(route)
    return f"{route.app}: no filler for path parameter(s) {', '.join(missing)}" if missing else None


@dataclass(frozen=True)
class Call:
    url: str
    body: dict[str, Any] | None
    query: dict[str, str]


def real_call(route: Route, method: str, objs: AcmeObjects) -> Call:
    """A request that succeeds for acme: parameters filled with acme's objects, a valid body for a write."""
    for name in NEEDS.get(route.name, ()):
        getattr(objs, name)
    url = route.url({name: PARAMETERS[name](objs) for name in route.params})
    recipe = BODIES.get((route.name, method))
    body = recipe.make(objs) if recipe is not None else None
    query_recipe = QUERIES.get((route.name, method))
    return Call(url=url, body=body, query=query_recipe(objs) if query_recipe else {})


def send(client: APIClient, method: str, call: Call, **extra: Any) -> Any:
    """Send `call` with `client`; a write's body as JSON."""
    url = call.url
    if call.query:
        url = f"{url}?{urlencode(call.query)}"
    if method in WRITE_METHODS:
        return send_raw(client, method, url, _json(call.body), **extra)
    return client.generic(method, url, **extra)


def send_raw(
    client: APIClient, method: str, url: str, body: bytes, content_type: str = "application/json", **extra: Any
) -> Any:
    """Send bytes exactly as given (the test client's stubs only admit text bodies)."""
    generic: Any = client.generic
    return generic(method, url, body, content_type=content_type, **extra)


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()
