"""The read every `graph.invoke` starts with is one prepared statement that PostgreSQL plans once."""

from __future__ import annotations

import base64

import pytest
from django.db import connection

from conftest import World
from langgraph_app import selectors
from langgraph_app.models import ThreadCheckpoint

pytestmark = pytest.mark.django_db


def test_get_tuples_read_of_a_threads_latest_checkpoint_is_planned_once_not_on_every_call(world: World) -> None:
    value = base64.b64encode(b'"refunds"').decode()
    checkpoint = {
        "checkpoint_id": "1f0-0001",
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"topic": 1}},
        "blobs": [{"channel": "topic", "version": "1", "type": "json", "blob": value}],
    }
    url = "/api/v1/langgraph/threads/lg-plans/checkpoints"
    assert world.acme.client.post(url, checkpoint, format="json").status_code == 201
    # A thread with a history (older checkpoints, copies of this one), its statistics up to date: as in
    # production, where PostgreSQL's estimate of a generic plan then grows with the thread.
    table = ThreadCheckpoint._meta.db_table
    with connection.cursor() as cursor:
        columns = "session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, created_at"
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT session_id, checkpoint_ns, "  # noqa: S608 - model table name
            "'1f0-0000-' || lpad(n::text, 5, '0'), '', checkpoint, metadata, created_at "
            f"FROM {table}, generate_series(1, 2000) AS n"
        )
        cursor.execute(f"ANALYZE {table}")

    for _ in range(12):
        [view] = selectors.list_tuples(tenant=world.acme.tenant, thread_id="lg-plans", checkpoint_ns="", limit=1)
        assert view.row.checkpoint_id == "1f0-0001" and len(view.blobs) == 1

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%jsonb_each_text%"],
        )
        [(generic, custom)] = cursor.fetchall()
    # PostgreSQL tries five plans for the values, then keeps the generic plan when it is no costlier; with the
    # limit as a parameter it planned all twelve calls again (checked).
    assert custom <= 5 and generic >= 7, (generic, custom)
