"""Assertions the generic suites share: the one error shape, and "nothing changed" snapshots of what is stored."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from django.apps import apps

from memory_admin.health import redis_client
from tests.api.catalogue import ROUTES, Route
from tests.api.recipes import NEEDS, PARAMETERS, QUERIES, AcmeObjects

ERROR_KEYS = {"status", "code", "message", "details", "request_id"}
PROJECT_APPS = ("tenants_app", "sessions_app", "checkpoints_app", "memories_app", "compliance_app")
# Keys the API writes on requests by design (rate-limit counters, the API-key cache epoch): not "stored data".
_VOLATILE_REDIS_PREFIXES = ("mem:rl:", "mem:apikeys:")
# Response fields that change on reads or with the clock, not because someone wrote.
_VOLATILE_FIELDS = {"ttl_seconds", "source", "access_count", "last_accessed_at", "decay_score", "eviction_candidate"}


def assert_error_shape(response: Any, status: int | None = None, code: str | None = None) -> dict[str, Any]:
    """The response is the API's one JSON error body, consistent with its HTTP status."""
    where = f"{response.status_code} {response.content[:300]!r}"
    if status is not None:
        assert response.status_code == status, where
    assert response.status_code >= 400, where
    assert response["Content-Type"].startswith("application/json"), where
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, where
    error: dict[str, Any] = body["error"]
    assert set(error) == ERROR_KEYS, where
    assert error["status"] == response.status_code, where
    assert isinstance(error["code"], str) and error["code"], where
    assert isinstance(error["message"], str) and error["message"], where
    assert isinstance(error["details"], dict), where
    assert error["request_id"] and error["request_id"] == response["X-Request-ID"], where
    if code is not None:
        assert error["code"] == code, where
    return error


def _project_models() -> list[Any]:
    return [
        model for name in PROJECT_APPS if apps.is_installed(name) for model in apps.get_app_config(name).get_models()
    ]


def stored_state() -> dict[str, Any]:
    """Row counts of every project table, each versioned row's version, sessions' heads, and Redis keys."""
    tables: dict[str, Any] = {}
    for model in _project_models():
        manager = model._default_manager
        fields = {field.name for field in model._meta.get_fields()}
        versions = sorted(map(str, manager.values_list("pk", "version"))) if "version" in fields else None
        tables[model._meta.label] = (manager.count(), versions)
    sessions = apps.get_model("sessions_app", "AgentSession")._default_manager.order_by("tenant_id", "session_id")
    heads = list(sessions.values_list("session_id", "head_version", "status", "metadata"))
    keys = sorted(
        key.decode() for key in redis_client().scan_iter() if not key.decode().startswith(_VOLATILE_REDIS_PREFIXES)
    )
    return {"tables": tables, "sessions": heads, "redis": keys}


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _stable(item) for key, item in value.items() if key not in _VOLATILE_FIELDS}
    if isinstance(value, list):
        return [_stable(item) for item in value]
    return value


def acme_view(objs: AcmeObjects, *, within: Route | None = None) -> dict[str, Any]:
    """What acme reads through every GET route whose objects exist already (nothing new is built).

    `within` narrows it to the GET routes about the same objects as that route (their parameters a subset
    of its parameters), which keeps a per-route check cheap.
    """
    client = objs.client
    view: dict[str, Any] = {}
    for route in ROUTES:
        if "GET" not in route.methods or any(name not in PARAMETERS for name in route.params):
            continue
        if within is not None and not set(route.params) <= set(within.params):
            continue
        needs = _objects_needed(route)
        if not all(objs.built(name) for name in needs):
            continue
        url = route.url({name: PARAMETERS[name](objs) for name in route.params})
        query = QUERIES.get((route.name, "GET"))
        response = client.get(url, query(objs) if query else None)
        view[route.template] = (response.status_code, _body(response))
    return view


def _body(response: Any) -> Any:
    """The JSON body (without volatile fields), or the digest of a file download (an export archive)."""
    if not response.content:
        return None
    if not response.get("Content-Type", "").startswith("application/json"):
        return hashlib.sha256(response.content).hexdigest()
    return _stable(response.json())


# Which cached AcmeObjects attributes a path parameter reads (so acme_view never builds new objects).
_BUILT_BY = {
    "session_id": ("session_id",),
    "tool": ("session_id", "tool"),
    "operation_id": ("session_id", "operation_id"),
    "checkpoint_id": ("session_id", "checkpoints"),
    "sequence": ("session_id", "checkpoints"),
    "memory_id": ("memory_id",),
    "job_id": ("session_id", "job_id"),
    "user_id": ("user_id",),
    "request_id": ("erasure_id",),
    "export_id": ("export_id",),
}


def _objects_needed(route: Route) -> set[str]:
    needs = {attribute for name in route.params for attribute in _BUILT_BY.get(name, (name,))}
    return needs | set(NEEDS.get(route.name, ()))


# --- walking JSON bodies --------------------------------------------------------------------------------


def string_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every string value (and its keys' owners) inside a JSON value."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_paths(item, (*path, index))


def object_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        yield path
        for key, item in value.items():
            yield from object_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from object_paths(item, (*path, index))


def replaced(body: Any, path: tuple[Any, ...], change: Callable[[Any], Any]) -> Any:
    copy = json.loads(json.dumps(body))
    if not path:
        return change(copy)
    holder = copy
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = change(holder[path[-1]])
    return copy
