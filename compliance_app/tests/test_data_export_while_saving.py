"""An export built while the person's agent keeps saving checkpoints: each session's checkpoints and the
counts of their children are read as of one moment, so a save committing meanwhile is exported whole or not
at all — the export does not fail on it."""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from checkpoints_app import services
from checkpoints_app.models import Checkpoint
from checkpoints_app.tests.helpers import acme_session, saved
from compliance_app.export import Builder
from compliance_app.models import ExportRequest
from conftest import World

pytestmark = pytest.mark.django_db

_READS_CHECKPOINTS = re.compile(r"\bcheckpoints_app_checkpoint(head)?\b")


@pytest.mark.parametrize("kind", ["next", "fork"])
def test_a_checkpoint_saved_while_the_export_reads_checkpoints_is_exported_whole_or_not_at_all(
    world: World, kind: str
) -> None:
    client = world.acme.client
    session = acme_session(world, user_id="erin")
    first = saved(client, session, state={"l": [0] * 50})  # large enough for the next ones to be stored as deltas
    second = saved(client, session, parent_id=first["id"], patch=[{"op": "add", "path": "/l/-", "value": 1}])
    filed = client.post("/api/v1/export-requests", {"user_id": "erin"}, format="json")
    assert filed.status_code == 201, filed.content
    builder = Builder(export=ExportRequest.objects.get(pk=filed.json()["id"]))
    # The agent's next step, or a fork from the first checkpoint, whose parent has a child already.
    parent = uuid.UUID(second["id"] if kind == "next" else first["id"])
    ran: list[bool] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if not ran and _READS_CHECKPOINTS.search(sql):  # right after the first statement reading checkpoints
            ran.append(True)
            services.save_checkpoint(
                session=session, node_id="n", parent_id=parent, patch=[{"op": "add", "path": "/l/-", "value": 2}]
            )
        return result

    out = io.BytesIO()
    with connection.execute_wrapper(wrapper):
        builder.build(out, generated_at=timezone.now())

    assert ran
    assert Checkpoint.objects.get(session=session, sequence=3).kind == "delta"  # it needs its parent's state
    with zipfile.ZipFile(out) as archive:
        rows = json.loads(archive.read("checkpoints.json"))
    assert [row["state"]["l"][50:] for row in rows][:2] == [[], [1]]
    assert len(rows) in (2, 3)
    if len(rows) == 3:
        assert rows[2]["state"]["l"][50:] == ([1, 2] if kind == "next" else [2])
