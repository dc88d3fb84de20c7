"""`manage.py reembed`: re-embed every live memory made by another embedder than the active one.

Run it after changing EMBEDDING_PROVIDER, the model or EMBEDDING_DIMENSIONS. It works in batches, prints
progress, and can be stopped and run again at any time: it only picks memories not yet re-embedded. Until it
finishes, search does not find the memories still on the old model. At the end it makes sure the HNSW index
for the new dimension exists.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from memories_app.embeddings import EmbedderUnavailable, get_embedder
from memories_app.models import Memory
from memories_app.vector_index import ensure_index


class Command(BaseCommand):
    help = "Re-embed memories made by another embedder than the active one, with progress."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=128)

    def handle(self, *args: Any, **options: Any) -> None:
        embedder = get_embedder()
        batch_size = max(1, int(options["batch_size"]))
        stale = Memory.objects.alive().exclude(embedding_model=embedder.model_id)
        total = stale.count()
        self.stdout.write(f"{total} memories to re-embed with {embedder.model_id}")
        done = 0
        while True:
            batch = list(stale.order_by("pk").only("pk", "content")[:batch_size])
            if not batch:
                break
            try:
                vectors = embedder.embed([memory.content for memory in batch])
            except EmbedderUnavailable as exc:
                raise CommandError(f"{exc} {done} of {total} done; run the command again to continue.") from exc
            with transaction.atomic():
                for memory, vector in zip(batch, vectors, strict=True):
                    # Conditional: a memory re-embedded meanwhile (an update by the API) is left alone.
                    Memory.objects.filter(pk=memory.pk).exclude(embedding_model=embedder.model_id).update(
                        embedding=vector, embedding_model=embedder.model_id, dimensions=embedder.dimensions
                    )
            done += len(batch)
            self.stdout.write(f"re-embedded {done}/{total}")
        if ensure_index(embedder.dimensions):
            self.stdout.write(f"HNSW index for {embedder.dimensions} dimensions is in place")
        else:
            self.stdout.write(f"{embedder.dimensions} dimensions is above HNSW's limit: global search scans exactly")
