from __future__ import annotations

import pytest

from memories_app.models import Memory, MemoryRevision
from memories_app.tests.conftest import create


def _memory(world, content="Alice lives in Oslo."):
    return create(world.acme.client, scope="user", user_id="alice", content=content).json()


def test_update_with_matching_if_match_bumps_the_version_and_records_history(world):
    memory = _memory(world)

    response = world.acme.client.patch(
        f"/api/v1/memories/{memory['id']}", {"content": "Alice lives in Bergen."}, format="json", HTTP_IF_MATCH='"1"'
    )

    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2 and response["ETag"] == '"2"'
    revision = MemoryRevision.objects.get(memory_id=memory["id"])
    assert (revision.kind, revision.previous_content, revision.content) == (
        "update",
        "Alice lives in Oslo.",
        "Alice lives in Bergen.",
    )
    assert revision.actor.startswith("api-key:")


def test_update_of_content_re_embeds_the_memory(world):
    memory = _memory(world)
    before = Memory.objects.get(pk=memory["id"]).embedding

    world.acme.client.patch(f"/api/v1/memories/{memory['id']}", {"content": "Completely different."}, format="json")

    assert list(Memory.objects.get(pk=memory["id"]).embedding) != list(before)


def test_update_with_stale_if_match_returns_412_with_the_current_memory(world):
    memory = _memory(world)
    world.acme.client.patch(f"/api/v1/memories/{memory['id']}", {"content": "Alice lives in Bergen."}, format="json")

    response = world.acme.client.patch(
        f"/api/v1/memories/{memory['id']}", {"content": "Alice lives in Tromsø."}, format="json", HTTP_IF_MATCH='"1"'
    )

    assert response.status_code == 412
    details = response.json()["error"]["details"]
    assert details["current_version"] == 2
    assert details["current"]["content"] == "Alice lives in Bergen."
    assert Memory.objects.get(pk=memory["id"]).content == "Alice lives in Bergen."


def test_update_with_stale_if_match_and_merge_combines_both_texts_deterministically(world):
    memory = _memory(world, "Alice lives in Oslo. She has a cat.")
    newer = {"content": "Alice lives in Oslo. She has a cat. She cycles."}
    world.acme.client.patch(f"/api/v1/memories/{memory['id']}", newer, format="json")

    response = world.acme.client.patch(
        f"/api/v1/memories/{memory['id']}",
        {"content": "Alice lives in Oslo. She speaks Norwegian.", "on_conflict": "merge"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )

    assert response.status_code == 200, response.json()
    assert response["Memory-Merged"] == "true"
    assert response.json()["content"] == "Alice lives in Oslo. She has a cat. She cycles. She speaks Norwegian."
    merge = MemoryRevision.objects.get(memory_id=memory["id"], kind="merge")
    assert merge.inputs["current"] == "Alice lives in Oslo. She has a cat. She cycles."
    assert merge.inputs["incoming"] == "Alice lives in Oslo. She speaks Norwegian."
    assert merge.inputs["method"] == "deterministic" and merge.inputs["incoming_based_on"] == [1]


@pytest.mark.parametrize("if_match", ['W/"1"', '"v1"', ""])
def test_merge_with_an_if_match_naming_no_version_of_this_api_returns_412_and_changes_nothing(world, if_match):
    memory = _memory(world, "Alice likes tea.")

    response = world.acme.client.patch(
        f"/api/v1/memories/{memory['id']}",
        {"content": "Alice likes coffee.", "on_conflict": "merge"},
        format="json",
        HTTP_IF_MATCH=if_match,
    )

    assert response.status_code == 412, response.json()
    stored = Memory.objects.get(pk=memory["id"])
    assert (stored.content, stored.version) == ("Alice likes tea.", 1)
    assert not MemoryRevision.objects.filter(memory_id=memory["id"], kind="merge").exists()


def test_update_with_stale_if_match_and_merge_that_changes_metadata_returns_412_and_keeps_the_other_writers(world):
    memory = create(
        world.acme.client, scope="user", user_id="alice", content="Lives in Paris.", metadata={"topic": "home"}
    ).json()
    other = {"metadata": {"topic": "home", "verified": True}}
    assert world.acme.client.patch(f"/api/v1/memories/{memory['id']}", other, format="json").status_code == 200

    response = world.acme.client.patch(
        f"/api/v1/memories/{memory['id']}",
        {"content": "Works in Lyon.", "metadata": {"topic": "home", "source": "chat"}, "on_conflict": "merge"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )

    assert response.status_code == 412, response.json()
    stored = Memory.objects.get(pk=memory["id"])
    assert (stored.content, stored.metadata, stored.version) == (
        "Lives in Paris.",
        {"topic": "home", "verified": True},
        2,
    )


def test_update_with_stale_if_match_and_merge_that_resends_the_current_metadata_merges_the_texts(world):
    memory = create(
        world.acme.client, scope="user", user_id="alice", content="Lives in Paris.", metadata={"topic": "home"}
    ).json()
    world.acme.client.patch(
        f"/api/v1/memories/{memory['id']}", {"content": "Lives in Paris. Has a cat."}, format="json"
    )

    response = world.acme.client.patch(
        f"/api/v1/memories/{memory['id']}",
        {"content": "Lives in Paris. Cycles.", "metadata": {"topic": "home"}, "on_conflict": "merge"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )

    assert response.status_code == 200, response.json()
    assert response["Memory-Merged"] == "true"
    assert response.json()["metadata"] == {"topic": "home"}


def test_merge_uses_the_language_model_when_one_is_configured(world, fake_openai):
    memory = _memory(world)
    world.acme.client.patch(f"/api/v1/memories/{memory['id']}", {"content": "Alice lives in Bergen."}, format="json")
    fake_openai.chat_answer = "Alice moved from Oslo to Bergen."

    response = world.acme.client.patch(
        f"/api/v1/memories/{memory['id']}",
        {"content": "Alice lives in Oslo now.", "on_conflict": "merge"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )

    assert response.status_code == 200, response.json()
    assert response.json()["content"] == "Alice moved from Oslo to Bergen."
    chat = [r for r in fake_openai.requests if r["path"] == "/v1/chat/completions"]
    assert len(chat) == 1 and "Alice lives in Bergen." in chat[0]["body"]["messages"][-1]["content"]
    assert MemoryRevision.objects.get(memory_id=memory["id"], kind="merge").inputs["method"] == "llm"


def test_merge_when_the_language_model_is_down_returns_503_and_changes_nothing(world, fake_openai):
    memory = _memory(world)
    world.acme.client.patch(f"/api/v1/memories/{memory['id']}", {"content": "Alice lives in Bergen."}, format="json")
    fake_openai.failing_status = 503

    response = world.acme.client.patch(
        f"/api/v1/memories/{memory['id']}",
        {"content": "Alice lives in Oslo now.", "on_conflict": "merge"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )

    assert response.status_code == 503
    assert Memory.objects.get(pk=memory["id"]).version == 2
    assert not MemoryRevision.objects.filter(kind="merge").exists()


def test_update_with_nothing_to_change_returns_400(world):
    memory = _memory(world)

    response = world.acme.client.patch(f"/api/v1/memories/{memory['id']}", {}, format="json")

    assert response.status_code == 400


def test_history_lists_every_content_change_in_order(world):
    memory = _memory(world)
    for text in ("Second text.", "Third text."):
        world.acme.client.patch(f"/api/v1/memories/{memory['id']}", {"content": text}, format="json")

    response = world.acme.client.get(f"/api/v1/memories/{memory['id']}/history")

    assert [r["version"] for r in response.json()["revisions"]] == [2, 3]
    assert response.json()["revisions"][1]["previous_content"] == "Second text."


def test_delete_hides_the_memory_at_once_from_get_list_and_search(world):
    memory = _memory(world)

    deleted = world.acme.client.delete(f"/api/v1/memories/{memory['id']}")

    assert deleted.status_code == 204
    assert world.acme.client.get(f"/api/v1/memories/{memory['id']}").status_code == 404
    assert world.acme.client.get("/api/v1/memories").json()["results"] == []
    found = world.acme.client.post("/api/v1/memories/search", {"query": "Oslo", "user_id": "alice"}, format="json")
    assert found.json()["results"] == []
    assert Memory.objects.get(pk=memory["id"]).deleted_at is not None


def test_delete_with_stale_if_match_returns_412_and_keeps_the_memory(world):
    memory = _memory(world)
    world.acme.client.patch(f"/api/v1/memories/{memory['id']}", {"content": "Changed."}, format="json")

    response = world.acme.client.delete(f"/api/v1/memories/{memory['id']}", HTTP_IF_MATCH='"1"')

    assert response.status_code == 412
    assert Memory.objects.get(pk=memory["id"]).deleted_at is None
