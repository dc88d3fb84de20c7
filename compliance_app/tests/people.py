"""Fill every layer for one person through the API, as an agent would: shared by the erasure and export tests."""

from __future__ import annotations

import base64
import json
from typing import Any

from django.db import connection

from compliance_app import services
from compliance_app.models import ErasureRequest
from compliance_app.tasks import purge_erasure
from conftest import World


def fill_every_layer(world: World, user_id: str, marker: str, *, agent: Any = None) -> dict[str, Any]:
    """Every layer for one person of `agent`'s tenant (acme by default), with `marker` in every text."""
    client = (agent or world.acme).client
    session_id = f"{user_id}-s1"
    assert client.post("/api/v1/sessions", {"id": session_id, "user_id": user_id}, format="json").status_code == 201
    base = f"/api/v1/sessions/{session_id}"
    say = {"messages": [{"role": "user", "content": f"{marker} my card ends 4242"}]}
    assert (
        client.post(f"{base}/context/messages", say, format="json", HTTP_IDEMPOTENCY_KEY=f"{marker}-k1").status_code
        == 201
    )
    assert client.put(f"{base}/tools/search", {"state": {"q": marker}}, format="json").status_code == 200
    operation = client.post(
        f"{base}/operations", {"name": "email", "key": "k", "params": {"to": marker}}, format="json"
    )
    assert operation.status_code == 201
    checkpoint = client.post(f"{base}/checkpoints", {"node_id": "n1", "state": {"note": marker}}, format="json")
    assert checkpoint.status_code == 201, checkpoint.content
    value = base64.b64encode(json.dumps(f"{marker} chose the aisle").encode()).decode()
    langgraph = {
        "checkpoint_id": "1f0-0001",
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"seat": 1}},
        "blobs": [{"channel": "seat", "version": "1", "type": "json", "blob": value}],
    }
    graph = client.post(f"/api/v1/langgraph/threads/{session_id}/checkpoints", langgraph, format="json")
    assert graph.status_code == 201, graph.content
    memory = {"scope": "user", "user_id": user_id, "content": f"{marker} prefers window seats"}
    assert client.post("/api/v1/memories", memory, format="json").status_code == 201
    session_memory = {"scope": "session", "session_id": session_id, "content": f"{marker} asked about refunds"}
    assert client.post("/api/v1/memories", session_memory, format="json").status_code == 201
    profile = {"preferences": {"lang": "en"}, "facts": {"city": f"{marker} lives in Porto"}}
    assert client.patch(f"/api/v1/users/{user_id}/profile", profile, format="json").status_code == 200
    # LangGraph's store, under namespaces that name the person (its usual convention), and one that does not.
    items = {
        "ops": [
            {
                "op": "put",
                "namespace": ["users", user_id, "prefs"],
                "key": "seat",
                "value": {"text": f"{marker} aisle"},
            },
            {"op": "put", "namespace": [user_id], "key": "tone", "value": {"text": f"{marker} formal"}},
            {"op": "put", "namespace": ["faq", "shared"], "key": "opening-hours", "value": {"text": "9 to 5"}},
        ]
    }
    assert client.post("/api/v1/langgraph/store/batch", items, format="json").status_code == 200
    # Hot context in Redis, as the agent's next read would leave it.
    assert client.get(f"{base}/context").status_code == 200
    return {"session_id": session_id, "base": base}


def postgres_rows_containing(text: str) -> dict[str, int]:
    """Per table of the database, how many rows hold `text` anywhere in their columns (none listed: zero)."""
    found = {}
    with connection.cursor() as cursor:
        cursor.execute("select tablename from pg_tables where schemaname = 'public'")
        for (table,) in cursor.fetchall():
            cursor.execute(f'select count(*) from "{table}" t where t::text like %s', [f"%{text}%"])  # noqa: S608
            count = cursor.fetchone()[0]
            if count:
                found[table] = count
    return found


def erased(world: World, user_id: str, django_capture_on_commit_callbacks: Any) -> ErasureRequest:
    """File, approve (running its after-commit Redis purge, as in production) and purge an erasure of acme's
    `user_id`; the request as it ends."""
    request = services.file_erasure(
        tenant=world.acme.tenant, user_id=user_id, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    purge_erasure(str(request.pk))
    return ErasureRequest.objects.get(pk=request.pk)
