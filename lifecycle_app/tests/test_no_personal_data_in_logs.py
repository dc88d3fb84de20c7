"""No personal data in the logs: requests carrying message content, memory text and user ids go through the
API, then the lifecycle jobs archive and evict them; the JSON log lines name none of those strings."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from conftest import World
from lifecycle_app import jobs
from memories_app.models import Memory
from memory_admin.observability import configure_logging
from sessions_app.models import AgentSession

pytestmark = pytest.mark.django_db

USER_ID = "patient-0451-jane.doe@example.org"
MESSAGE = "my diagnosis is zebra-pox and my PIN is 8812"
MEMORY_TEXT = "Jane prefers appointments on Tuesdays at the Elm Street clinic"
TOOL_RESULT = "account IBAN DE89370400440532013000"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything logged, as the production JSON renderer writes it, at the most talkative level."""
    configure_logging("json", "debug")
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    configure_logging(settings.LOG_FORMAT, settings.LOG_LEVEL)


def test_message_content_memory_text_and_user_ids_never_reach_the_logs(world: World, log_output: io.StringIO) -> None:
    agent = world.acme.client
    assert agent.post("/api/v1/sessions", {"id": "visit-1", "user_id": USER_ID}, format="json").status_code == 201
    said = agent.post(
        "/api/v1/sessions/visit-1/context/messages",
        {"messages": [{"role": "user", "content": MESSAGE}]},
        format="json",
    )
    assert said.status_code in (200, 201), said.content
    tool = agent.post(
        "/api/v1/sessions/visit-1/events",
        {"events": [{"type": "TOOL_EXECUTED", "payload": {"tool": "bank", "result": TOOL_RESULT}}]},
        format="json",
    )
    assert tool.status_code in (200, 201), tool.content
    remembered = agent.post(
        "/api/v1/memories", {"scope": "user", "user_id": USER_ID, "content": MEMORY_TEXT}, format="json"
    )
    assert remembered.status_code == 201, remembered.content
    assert agent.get("/api/v1/sessions/visit-1/context").status_code == 200
    assert agent.get(f"/api/v1/memories?user_id={USER_ID}").status_code == 200
    # Requests that fail log too: a session of another user with the same id, a bad message.
    agent.post("/api/v1/sessions", {"id": "visit-1", "user_id": USER_ID + "-other"}, format="json")
    agent.post("/api/v1/sessions/visit-1/context/messages", {"messages": [{"content": MESSAGE}]}, format="json")

    long_ago = timezone.now() - timedelta(days=400)
    AgentSession.objects.update(last_activity_at=long_ago, updated_at=long_ago)
    Memory.objects.update(created_at=long_ago, updated_at=long_ago)
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    jobs.evict_memories(dry_run=False, triggered_by="manual")
    jobs.evict_memories(dry_run=False, triggered_by="manual")

    logged = log_output.getvalue()
    assert '"event": "request"' in logged and '"event": "job_finished"' in logged  # the capture works
    for secret in (USER_ID, "jane.doe", MESSAGE, "zebra-pox", MEMORY_TEXT, "Elm Street", TOOL_RESULT, "DE89"):
        assert secret not in logged, secret


def test_exceptions_are_logged_by_type_and_place_without_their_message_or_the_path(log_output: io.StringIO) -> None:
    import json

    import structlog

    try:
        raise ValueError(f"duplicate key value violates unique constraint DETAIL: Key (user_id)=({USER_ID})")
    except ValueError:
        logging.getLogger("django.request").error(f"Internal Server Error: /api/v1/users/{USER_ID}", exc_info=True)
        logging.getLogger("celery.app.trace").error(f"Task x[1] raised unexpected: ValueError('{USER_ID}')")
        structlog.get_logger("memory.test").exception("step_failed")

    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    assert USER_ID not in log_output.getvalue() and "jane.doe" not in log_output.getvalue()
    assert [line["event"] for line in lines] == ["Internal Server Error", "Task x[1] raised unexpected", "step_failed"]
    assert lines[0]["exception"]["type"] == lines[2]["exception"]["type"] == "ValueError"
    assert "test_no_personal_data_in_logs.py" in lines[2]["exception"]["frames"][-1]


def test_development_logs_are_readable_lines_not_json() -> None:
    import structlog

    configure_logging("console", "info")
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        structlog.get_logger("memory.test").info("job_finished", job="memory_eviction", evicted=3)
    finally:
        configure_logging(settings.LOG_FORMAT, settings.LOG_LEVEL)

    line = buffer.getvalue().strip()
    assert not line.startswith("{")
    assert "job_finished" in line and "job=memory_eviction" in line and "evicted=3" in line
