from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from langgraph_app import store
from langgraph_app.models import StoreItem
from memories_app.embeddings import get_embedder, reset_embedder
from memories_app.models import Memory
from memories_app.tests.conftest import create


def test_reembed_moves_every_memory_to_the_new_embedder_and_creates_its_index(transactional_db, world):
    # Outside a test transaction, as in production: the index is built CONCURRENTLY.
    for text in ("Alice likes tea.", "Alice likes coffee.", "Bob likes juice."):
        create(world.acme.client, scope="user", user_id="alice", content=text)
    out = StringIO()

    with override_settings(EMBEDDING_DIMENSIONS=256):
        reset_embedder()
        call_command("reembed", "--batch-size", "2", stdout=out)
        found = world.acme.client.post(
            "/api/v1/memories/search", {"query": "Alice likes tea.", "user_id": "alice", "k": 1}, format="json"
        )

    assert set(Memory.objects.values_list("embedding_model", "dimensions")) == {("hashing-256", 256)}
    assert "re-embedded 2/3" in out.getvalue() and "re-embedded 3/3" in out.getvalue()
    assert found.json()["results"][0]["memory"]["content"] == "Alice likes tea."
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'memory_embedding_hnsw_256'")
        created = cursor.fetchone() is not None
        cursor.execute("DROP INDEX IF EXISTS memory_embedding_hnsw_256")
    assert created


def test_memories_on_the_old_model_are_not_searched_until_reembedded(world):
    create(world.acme.client, scope="user", user_id="alice", content="Alice likes tea.")

    with override_settings(EMBEDDING_DIMENSIONS=256):
        reset_embedder()
        found = world.acme.client.post(
            "/api/v1/memories/search", {"query": "Alice likes tea.", "user_id": "alice"}, format="json"
        )

    assert found.status_code == 200 and found.json()["results"] == []


def test_reembed_when_the_embedder_is_down_stops_with_a_clear_error_and_changes_nothing(world, fake_openai):
    with override_settings(EMBEDDING_PROVIDER="hashing"):
        reset_embedder()
        create(world.acme.client, scope="user", user_id="alice", content="Alice likes tea.")
    reset_embedder()
    fake_openai.failing_status = 500

    with pytest.raises(CommandError, match="run the command again"):
        call_command("reembed", stdout=StringIO())

    assert Memory.objects.get().embedding_model == "hashing-384"


def test_reembed_skips_and_reports_the_memories_the_new_embedder_refuses_and_moves_the_rest(
    transactional_db, world, fake_openai
):
    texts = ["Alice likes tea.", "REFUSED Alice wrote a novel.", "Alice likes coffee.", "Bob likes juice."]
    with override_settings(EMBEDDING_PROVIDER="hashing"):
        reset_embedder()
        ids = {
            text: create(world.acme.client, scope="user", user_id="alice", content=text).json()["id"] for text in texts
        }
    reset_embedder()
    fake_openai.refuse_text = "REFUSED"
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError, match="1 of 4 memories were refused") as refusal:
        call_command("reembed", "--batch-size", "2", stdout=out, stderr=err)

    models = dict(Memory.objects.values_list("content", "embedding_model"))
    assert models.pop("REFUSED Alice wrote a novel.") == "hashing-384"
    assert set(models.values()) == {get_embedder().model_id}
    assert ids["REFUSED Alice wrote a novel."] in str(refusal.value)
    assert ids["REFUSED Alice wrote a novel."] in err.getvalue()
    assert "re-embedded 3/4" in out.getvalue()


def test_reembed_skips_and_reports_the_store_items_the_new_embedder_refuses_and_moves_the_rest(
    transactional_db, world, fake_openai
):
    texts = {"a": "tea notes", "b": "REFUSED novel draft", "c": "coffee notes", "d": "juice notes"}
    with override_settings(EMBEDDING_PROVIDER="hashing"):
        reset_embedder()
        ops = [
            {"op": "put", "namespace": ["docs"], "key": key, "value": {"text": text}, "index": ["text"]}
            for key, text in texts.items()
        ]
        response = world.acme.client.post("/api/v1/langgraph/store/batch", {"ops": ops}, format="json")
        assert response.status_code == 200, response.json()
    reset_embedder()
    fake_openai.refuse_text = "REFUSED"
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError, match="1 LangGraph store items were refused") as refusal:
        call_command("reembed", "--batch-size", "2", stdout=out, stderr=err)

    models = dict(StoreItem.objects.values_list("key", "embedding_model"))
    assert models.pop("b") == "hashing-384"
    assert set(models.values()) == {get_embedder().model_id}
    refused_pk = str(StoreItem.objects.get(key="b").pk)
    assert refused_pk in str(refusal.value) and refused_pk in err.getvalue()
    assert "re-embedded 4/4 store items" in out.getvalue()


def test_reembed_moves_store_items_to_the_new_embedder_so_store_search_ranks_them_again(world):
    # Store items kept the old model's vectors: a store search no longer ranked them, for good.
    def batch(*ops):
        response = world.acme.client.post("/api/v1/langgraph/store/batch", {"ops": list(ops)}, format="json")
        assert response.status_code == 200, response.json()
        return response.json()["results"]

    def put(key, value, index):
        return {"op": "put", "namespace": ["docs"], "key": key, "value": value, "index": index}

    batch(
        put("py", {"chunks": [{"text": "python tutorial"}], "text": "unrelated"}, ["chunks[*].text"]),
        put("ts", {"text": "typescript guide"}, ["text"]),
        put("raw", {"text": "python tutorial"}, False),
    )
    search = {"op": "search", "namespace_prefix": ["docs"], "query": "python tutorial", "limit": 10}
    before = [(item["key"], item["score"]) for item in batch(search)[0]]
    out = StringIO()

    with override_settings(EMBEDDING_DIMENSIONS=256):
        reset_embedder()
        stale = [(item["key"], item["score"]) for item in batch(search)[0]]
        call_command("reembed", stdout=out)
        after = [(item["key"], item["score"]) for item in batch(search)[0]]

    assert [key for key, score in stale if score is not None] == []
    assert [key for key, _ in after] == ["py", "ts", "raw"] == [key for key, _ in before]
    assert after[0][1] == pytest.approx(1.0, abs=1e-3) and after[2][1] is None
    assert set(StoreItem.objects.exclude(key="raw").values_list("embedding_model", flat=True)) == {"hashing-256"}
    assert "re-embedded 2/2 store items" in out.getvalue()


def test_reembed_leaves_a_store_item_put_again_meanwhile_as_that_put_stored_it(world):
    world.acme.client.post(
        "/api/v1/langgraph/store/batch",
        {"ops": [{"op": "put", "namespace": ["docs"], "key": "k", "value": {"text": "old"}, "index": ["text"]}]},
        format="json",
    )
    with override_settings(EMBEDDING_DIMENSIONS=256):
        reset_embedder()
        [item] = list(store.items_to_reembed("hashing-256").only("pk", "value", "index_paths", "updated_at"))
        StoreItem.objects.filter(pk=item.pk).update(embedding=None, embedding_model="", updated_at=timezone.now())

        store.reembed_items([item], embedder=get_embedder())

    assert StoreItem.objects.get().embedding is None
