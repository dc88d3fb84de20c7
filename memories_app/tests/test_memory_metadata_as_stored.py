"""Memory metadata and profile preferences are PostgreSQL jsonb, which keeps numbers as numeric: some floats come
back as other JSON numbers (1e16 as 10000000000000000, -0.0 as 0.0, 1e300 as a 301-digit integer). They are
measured against their limit, compared and answered as they are kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import World
from memories_app.models import Memory, UserProfile
from memories_app.tests.conftest import create

pytestmark = pytest.mark.django_db

REWRITTEN = [1e16, -0.0, 1e300]


def _metadata(response: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = json.loads(response.content)["metadata"]
    return metadata


@pytest.mark.parametrize("value", REWRITTEN, ids=repr)
def test_a_memory_create_and_update_answer_the_metadata_as_a_later_read_gives_it(world: World, value: float) -> None:
    created = create(world.acme.client, scope="user", user_id="alice", content="Likes trains.", metadata={"x": value})
    memory_id = created.json()["id"]
    updated = world.acme.client.patch(f"/api/v1/memories/{memory_id}", {"metadata": {"y": [value]}}, format="json")

    read = world.acme.client.get(f"/api/v1/memories/{memory_id}")

    kept = _metadata(read)["y"][0]  # compared as JSON text: Python takes 1e16 == 10**16 and -0.0 == 0.0
    assert json.dumps(_metadata(created)) == json.dumps({"x": kept})
    assert json.dumps(_metadata(updated)) == json.dumps(_metadata(read)) == json.dumps({"y": [kept]})


def test_a_stale_update_merged_that_resends_metadata_as_jsonb_keeps_it_is_merged_not_refused(world: World) -> None:
    # Resending the stored metadata changes nothing, so the texts may merge; 1e16 is kept as 10000000000000000.
    memory = create(
        world.acme.client, scope="user", user_id="alice", content="Lives in Paris.", metadata={"x": 1e16}
    ).json()
    path = f"/api/v1/memories/{memory['id']}"
    world.acme.client.patch(path, {"content": "Lives in Paris. Has a cat."}, format="json")

    response = world.acme.client.patch(
        path,
        {"content": "Lives in Paris. Cycles.", "metadata": {"x": 1e16}, "on_conflict": "merge"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )

    assert response.status_code == 200, response.json()
    assert response["Memory-Merged"] == "true"


def test_numbers_that_jsonb_keeps_longer_count_at_their_kept_length_against_the_metadata_limit(
    world: World, settings
) -> None:
    settings.MEMORY_MAX_METADATA_BYTES = 1024
    body = {"metadata": {"a": [1e300] * 100}}  # ~800 bytes sent, ~30 KB kept

    created = create(world.acme.client, scope="user", user_id="alice", content="Likes trains.", **body)
    memory_id = create(world.acme.client, scope="user", user_id="alice", content="Likes boats.").json()["id"]
    updated = world.acme.client.patch(f"/api/v1/memories/{memory_id}", body, format="json")

    assert (created.status_code, updated.status_code) == (400, 400)
    assert Memory.objects.filter(tenant=world.acme.tenant).count() == 1
    assert Memory.objects.get(pk=memory_id).metadata == {}


def test_profile_preferences_are_answered_as_a_later_read_gives_them(world: World) -> None:
    path = "/api/v1/users/alice/profile"
    changed = world.acme.client.patch(path, {"preferences": {"budget": 1e16}}, format="json")

    read = world.acme.client.get(path)

    assert changed.status_code in (200, 201)
    assert json.dumps(json.loads(changed.content)["preferences"]) == json.dumps(json.loads(read.content)["preferences"])
    assert UserProfile.objects.get(tenant=world.acme.tenant, user_id="alice").version == 1
