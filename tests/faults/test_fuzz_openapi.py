"""Schemathesis against the service's own OpenAPI schema: every operation under /api/v1/, fuzzed in process.

Each generated request is sent twice: with the outsider tenant's key, then with acme's. Half the examples put
acme's real objects in the path (the rest keep the generated values), so the outsider knocks on acme's doors.
Every answer must be a non-5xx that matches the schema (a refusal: the one error shape); an outsider's answer
never carries acme's data, and never changes acme's rows.

Examples per operation: FUZZ_EXAMPLES (default 4), deterministic so that a run of the suite is reproducible;
FUZZ_RANDOM=1 draws new examples each run (for a deeper local hunt: FUZZ_EXAMPLES=50 FUZZ_RANDOM=1).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from checkpoints_app.models import Checkpoint
from conftest import Agent, make_agent
from memories_app.models import Memory
from memory_admin.wsgi import application
from sessions_app.models import AgentSession, Event, Operation
from tenants_app.models import Tenant
from tests.api.recipes import PARAMETERS, AcmeObjects

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
DETERMINISTIC = not os.environ.get("FUZZ_RANDOM")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
# Words that only acme's objects hold (tests/api/recipes.py makes them): never in an outsider's answer.
ACME_WORDS = ("charged twice", "refund policy", "Prefers refunds", "billing")

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application).include(path_regex="^/api/v1/")
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES, deterministic=DETERMINISTIC
)
schema.config.phases.update(phases=["fuzzing"])

sent: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print(f"\nFUZZ: {sum(sent.values())} requests over {len(sent)} operations (acme and outsider keys)")


def _keep_connection() -> None:
    """Requests go straight into the WSGI app, inside the test's transaction: Django must not close the
    connection at the end of each request. (Its test client does the same, and reconnects the signal after each
    of its own requests, so this is repeated before every call.)"""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)


@pytest.fixture
def in_process(db: None) -> Iterator[None]:
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _call(case: schemathesis.Case[Any], raw_key: str) -> Any:
    _keep_connection()
    response = case.call(headers={"Authorization": f"Bearer {raw_key}"})
    sent[f"{case.method} {case.path}"] += 1
    if response.status_code >= 400:
        # The schema documents successes; every refusal must be the one error shape (memory_admin/api/errors.py).
        error = response.json()["error"]
        assert set(error) == {"status", "code", "message", "details", "request_id"}, response.text[:300]
        assert error["status"] == response.status_code and isinstance(error["code"], str), response.text[:300]
    return response


@dataclass(frozen=True)
class Tenants:
    acme: Agent
    outsider: Agent
    paths: dict[str, str]  # path parameter name -> acme's object


@pytest.fixture(scope="module")
def tenants(django_db_setup: None, django_db_blocker: Any) -> Iterator[Tenants]:
    """acme with one of each object, and the outsider, made once for the module in a transaction that is rolled
    back at its end; each operation's test runs in a savepoint inside it, so what one fuzzes away the next
    still has."""
    with django_db_blocker.unblock(), transaction.atomic():
        acme, outsider = make_agent("acme"), make_agent("globex")
        objects = AcmeObjects(acme)
        paths = {name: fill(objects) for name, fill in PARAMETERS.items()}
        yield Tenants(acme=acme, outsider=outsider, paths=paths)
        transaction.set_rollback(True)


def _acme_rows(tenant: Tenant) -> tuple[Any, ...]:
    sessions = AgentSession.objects.filter(tenant=tenant)
    return (
        sorted(sessions.values_list("session_id", "status", "version", "head_version")),
        Event.objects.filter(session__tenant=tenant).count(),
        Checkpoint.objects.filter(session__tenant=tenant).count(),
        sorted(Operation.objects.filter(session__tenant=tenant).values_list("id", "status")),
        sorted(Memory.objects.filter(tenant=tenant).values_list("id", "version", "deleted_at")),
    )


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DETERMINISTIC,
    database=None,
    suppress_health_check=list(HealthCheck),  # fixtures are shared by an operation's examples on purpose
)
def test_every_operation_answers_within_its_schema_and_keeps_tenants_apart(
    case: schemathesis.Case[Any], tenants: Tenants, in_process: None
) -> None:
    label = f"{case.method} {case.path}"
    names = list(case.path_parameters or {})
    if names and all(name in tenants.paths for name in names) and sent[label] % 4 < 2:
        case.path_parameters = {name: tenants.paths[name] for name in names}

    before = _acme_rows(tenants.acme.tenant)
    outsider = _call(case, tenants.outsider.raw_key)
    case.validate_response(outsider, checks=CHECKS)
    assert not any(word in outsider.text for word in ACME_WORDS), f"{label}: acme's data reached the outsider"
    assert _acme_rows(tenants.acme.tenant) == before, f"{label}: the outsider changed acme's rows"

    acme = _call(case, tenants.acme.raw_key)
    case.validate_response(acme, checks=CHECKS)
