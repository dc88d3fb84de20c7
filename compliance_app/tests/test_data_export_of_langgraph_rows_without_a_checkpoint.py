"""The export holds the LangGraph rows erasure counts and removes that no stored checkpoint names: a task's writes
saved before their checkpoint (which never came), and channel values no checkpoint names any more."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any

import pytest

from compliance_app import scope
from compliance_app.tasks import build_export
from conftest import World
from langgraph_app.models import ChannelBlob, PendingWrite

pytestmark = pytest.mark.django_db

KIM = "kim-writes-1"


def _b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def _langgraph_rows(world: World, user_id: str) -> list[dict[str, Any]]:
    filed = world.acme.client.post("/api/v1/export-requests", {"user_id": user_id}, format="json")
    assert filed.status_code == 201, filed.content
    build_export(filed.json()["id"])
    archive = world.acme.client.get(f"/api/v1/export-requests/{filed.json()['id']}/archive")
    assert archive.status_code == 200, archive.content
    with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
        manifest = json.loads(files.read("manifest.json"))
        rows: list[dict[str, Any]] = json.loads(files.read("langgraph.json"))
    assert manifest["counts"]["langgraph"] == len(rows)
    return rows


def test_a_tasks_writes_saved_before_a_checkpoint_that_never_came_are_in_the_export(world: World) -> None:
    thread = f"/api/v1/langgraph/threads/{KIM}-t1"
    saved = {"checkpoint_id": "1f0-0001", "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00"}, "user_id": KIM}
    assert world.acme.client.post(f"{thread}/checkpoints", saved, format="json").status_code == 201
    # The next step's writes are saved (LangGraph saves them in the background); the process dies before its
    # checkpoint is.
    writes = {
        "checkpoint_ns": "",
        "checkpoint_id": "1f0-0002",
        "task_id": "task-1",
        "writes": [{"channel": "messages", "type": "json", "blob": _b64("KIM-SECRET my passport is X123")}],
    }
    assert world.acme.client.post(f"{thread}/writes", writes, format="json").status_code in (200, 201)
    assert PendingWrite.objects.filter(session__user_id=KIM).count() == 1
    person = scope.Person(tenant=world.acme.tenant, user_id=KIM)
    assert scope.stored_rows(person)["langgraph_values"] == 1  # what erasure counts and removes

    rows = _langgraph_rows(world, KIM)

    assert [row["kind"] for row in rows] == ["checkpoint", "pending_write"]
    assert rows[0]["pending_writes"] == []
    assert {key: rows[1][key] for key in ("session_id", "checkpoint_ns", "checkpoint_id", "task_id", "channel")} == {
        "session_id": f"{KIM}-t1",
        "checkpoint_ns": "",
        "checkpoint_id": "1f0-0002",
        "task_id": "task-1",
        "channel": "messages",
    }
    assert rows[1]["value"] == "KIM-SECRET my passport is X123"


def test_a_channel_value_no_checkpoint_names_any_more_is_in_the_export(world: World) -> None:
    thread = f"/api/v1/langgraph/threads/{KIM}-t2/checkpoints"
    for version, text in (("1", "KIM-OLD aisle seat"), ("2", "KIM-NEW window seat")):
        # The same checkpoint saved again naming another version of the channel: the first value stays stored.
        body = {
            "checkpoint_id": "1f0-0001",
            "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"seat": version}},
            "blobs": [{"channel": "seat", "version": version, "type": "json", "blob": _b64(text)}],
            "user_id": KIM,
        }
        assert world.acme.client.post(thread, body, format="json").status_code in (200, 201)
    assert ChannelBlob.objects.filter(session__user_id=KIM).count() == 2

    rows = _langgraph_rows(world, KIM)

    assert [row["kind"] for row in rows] == ["checkpoint", "channel_value"]
    assert rows[0]["channel_values"] == {"seat": "KIM-NEW window seat"}
    assert {key: rows[1][key] for key in ("session_id", "checkpoint_ns", "channel", "version", "value")} == {
        "session_id": f"{KIM}-t2",
        "checkpoint_ns": "",
        "channel": "seat",
        "version": "1",
        "value": "KIM-OLD aisle seat",
    }
