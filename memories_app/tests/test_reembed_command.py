from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from memories_app.embeddings import reset_embedder
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
