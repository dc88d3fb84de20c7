from __future__ import annotations

from django.test import override_settings

from memories_app.models import Memory


def test_batch_creates_every_memory_in_one_request(world):
    items = [{"scope": "user", "user_id": "alice", "content": f"Fact number {n}."} for n in range(20)]

    response = world.acme.client.post("/api/v1/memories/batch", {"memories": items}, format="json")

    assert response.status_code == 201, response.json()
    assert len(response.json()["memories"]) == 20
    assert Memory.objects.filter(tenant=world.acme.tenant).count() == 20


def test_batch_with_one_bad_item_returns_400_naming_it_and_stores_nothing(world):
    items = [
        {"scope": "user", "user_id": "alice", "content": "fine"},
        {"scope": "user", "user_id": "alice", "content": "bad vector", "embedding": [1.0, 2.0]},
    ]

    response = world.acme.client.post("/api/v1/memories/batch", {"memories": items}, format="json")

    assert response.status_code == 400
    assert "memories[1].embedding" in response.json()["error"]["details"]["fields"]
    assert Memory.objects.count() == 0


@override_settings(MEMORY_BATCH_MAX=3)
def test_batch_above_the_limit_returns_400(world):
    items = [{"scope": "global", "content": f"g{n}"} for n in range(4)]

    response = world.acme.client.post("/api/v1/memories/batch", {"memories": items}, format="json")

    assert response.status_code == 400
    assert Memory.objects.count() == 0


def test_empty_batch_returns_400(world):
    response = world.acme.client.post("/api/v1/memories/batch", {"memories": []}, format="json")

    assert response.status_code == 400


def test_a_batch_stores_every_column_as_the_response_and_a_later_read_show_it(world):
    from array import array

    from memories_app.tests.conftest import make_session

    make_session(world, user_id="alice", session_id="s-batch")
    vector = [((n * 7919) % 384) / 383 - 0.5 for n in range(384)]
    items = [
        {"scope": "user", "user_id": "alice", "content": "Likes crème brûlée.", "metadata": {"é": [1, {"x": None}]}},
        {"scope": "session", "session_id": "s-batch", "content": "Asked about tea.", "embedding": vector},
        {"scope": "global", "content": "Opens at nine."},
    ]

    answered = world.acme.client.post("/api/v1/memories/batch", {"memories": items}, format="json").json()["memories"]
    read = [world.acme.client.get(f"/api/v1/memories/{memory['id']}").json() for memory in answered]

    assert read == answered
    assert [m["scope"] for m in read] == ["user", "session", "global"]
    assert read[0]["metadata"] == {"é": [1, {"x": None}]} and read[1]["session_id"] == "s-batch"
    stored = Memory.objects.get(pk=answered[1]["id"])
    assert array("f", stored.embedding) == array("f", vector)  # the float4 values sent
    assert (stored.source, stored.source_key, stored.access_count, stored.version) == ("api", "", 0, 1)
    assert stored.last_accessed_at is None and stored.deleted_at is None
    # Stored rows behave like any other: an update with the version the batch answered succeeds.
    patched = world.acme.client.patch(
        f"/api/v1/memories/{answered[0]['id']}", {"content": "Loves crème brûlée."}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert patched.status_code == 200, patched.json()
