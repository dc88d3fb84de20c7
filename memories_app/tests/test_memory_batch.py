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
