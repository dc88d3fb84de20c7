"""Readers accept every schema version ever written: frozen rows of each version read back and verify."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from checkpoints_app.models import Checkpoint, CheckpointHead
from checkpoints_app.storage import CURRENT_SCHEMA_VERSION
from conftest import World
from sessions_app.models import AgentSession

from .helpers import acme_session, saved, url

pytestmark = pytest.mark.django_db

FIXTURES = sorted(Path(__file__).parent.glob("fixtures_schema_v*.json"))


def load_rows(session: AgentSession, fixture: Path) -> list[dict[str, Any]]:
    data = json.loads(fixture.read_text())
    by_sequence: dict[int, Checkpoint] = {}
    for row in data["rows"]:
        by_sequence[row["sequence"]] = Checkpoint.objects.create(
            session=session,
            sequence=row["sequence"],
            parent=by_sequence.get(row["parent"]) if row["parent"] else None,
            node_id=row["node_id"],
            metadata=row["metadata"],
            schema_version=data["schema_version"],
            kind=row["kind"],
            payload=base64.b64decode(row["payload_b64"]),
            checksum=row["checksum"],
            event_version=0,
        )
    last = by_sequence[max(by_sequence)]
    CheckpointHead.objects.create(session=session, last_sequence=last.sequence, latest=last)
    rows: list[dict[str, Any]] = data["rows"]
    return rows


def test_there_is_a_fixture_for_every_schema_version_up_to_the_current_one() -> None:
    assert [path.name for path in FIXTURES] == [
        f"fixtures_schema_v{version}.json" for version in range(1, CURRENT_SCHEMA_VERSION + 1)
    ]


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda path: path.stem)
def test_rows_of_every_schema_version_read_back_and_verify(world: World, fixture: Path) -> None:
    session = acme_session(world)
    rows = load_rows(session, fixture)

    for row in rows:
        response = world.acme.client.get(url(session, f"/by-sequence/{row['sequence']}"))
        assert response.status_code == 200, response.content
        assert response.json()["state"] == row["expected_state"]
    assert world.acme.client.get(url(session, "/verify")).json()["valid"] is True


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda path: path.stem)
def test_a_save_on_top_of_an_older_version_writes_the_current_version(world: World, fixture: Path) -> None:
    session = acme_session(world)
    rows = load_rows(session, fixture)

    body = saved(world.acme.client, session, state={"after": "upgrade"})

    assert body["sequence"] == rows[-1]["sequence"] + 1
    assert body["schema_version"] == CURRENT_SCHEMA_VERSION


def test_a_row_of_an_unknown_schema_version_is_an_integrity_failure(world: World) -> None:
    session = acme_session(world)
    checkpoint = saved(world.acme.client, session, state={"x": 1})
    Checkpoint.objects.filter(pk=checkpoint["id"]).update(schema_version=99)

    response = world.acme.client.get(url(session, "/latest"))

    assert response.status_code == 409
    assert response.json()["error"]["details"]["reason"] == "schema version 99 is unknown to this server"
