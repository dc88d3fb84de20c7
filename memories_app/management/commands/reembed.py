"""`manage.py reembed`: re-embed every live memory, and every LangGraph store item put with indexing, made by
another embedder than the active one.

Run it after changing EMBEDDING_PROVIDER, the model or EMBEDDING_DIMENSIONS. It works in batches, prints
progress, and can be stopped and run again at any time: it only picks what is not yet re-embedded. Until it
finishes, search does not find the memories and store items still on the old model. A store item is embedded
again from the index paths it was put with (items stored before the service recorded them are counted, and
ranked again once put again). At the end it makes sure the HNSW index for the new dimension exists.

A memory or store item the new embedder refuses for good (a text over its model's length) is reported by id and
skipped: the command goes on, and then exits with an error counting what was refused (it keeps its old vector).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from langgraph_app import store
from langgraph_app.models import StoreItem
from memories_app.embeddings import Embedder, EmbedderRefused, EmbedderUnavailable, get_embedder
from memories_app.models import Memory
from memories_app.vector_index import ensure_index


class Command(BaseCommand):
    help = "Re-embed memories and LangGraph store items made by another embedder than the active one, with progress."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=128)

    def handle(self, *args: Any, **options: Any) -> None:
        embedder = get_embedder()
        batch_size = max(1, int(options["batch_size"]))
        stale = Memory.objects.alive().exclude(embedding_model=embedder.model_id).order_by("pk").only("pk", "content")
        total = stale.count()
        self.stdout.write(f"{total} memories to re-embed with {embedder.model_id}")
        done = 0
        refused: list[str] = []
        # Onwards from the last batch's key: a memory the embedder refused is still stale, and must not come back.
        batch = list(stale[:batch_size])
        while batch:
            try:
                embedded = list(zip(batch, embedder.embed([memory.content for memory in batch]), strict=True))
            except EmbedderRefused:
                embedded = self._one_by_one(embedder, batch, refused)
            except EmbedderUnavailable as exc:
                raise CommandError(f"{exc} {done} of {total} done; run the command again to continue.") from exc
            with transaction.atomic():
                for memory, vector in embedded:
                    # Conditional: a memory re-embedded meanwhile (an update by the API) is left alone.
                    Memory.objects.filter(pk=memory.pk).exclude(embedding_model=embedder.model_id).update(
                        embedding=vector, embedding_model=embedder.model_id, dimensions=embedder.dimensions
                    )
            done += len(embedded)
            self.stdout.write(f"re-embedded {done}/{total}")
            batch = list(stale.filter(pk__gt=batch[-1].pk)[:batch_size])
        refused_items = self._store_items(embedder, batch_size)
        if ensure_index(embedder.dimensions):
            self.stdout.write(f"HNSW index for {embedder.dimensions} dimensions is in place")
        else:
            self.stdout.write(f"{embedder.dimensions} dimensions is above HNSW's limit: global search scans exactly")
        problems = []
        if refused:
            problems.append(
                f"{len(refused)} of {total} memories were refused by the embedder and keep their old vectors (search "
                f"does not find them): {', '.join(refused)}."
            )
        if refused_items:
            problems.append(
                f"{len(refused_items)} LangGraph store items were refused by the embedder and keep their old vectors: "
                f"{', '.join(refused_items)}."
            )
        if problems:
            raise CommandError(" ".join([*problems, "Shorten or delete them, then run the command again."]))

    def _one_by_one(self, embedder: Embedder, batch: list[Memory], refused: list[str]) -> list[tuple[Memory, Any]]:
        """The batch embedded text by text, once the embedder refused it whole: the memories it refuses on their
        own are reported (by id) and added to `refused`, the others go on."""
        embedded = []
        for memory in batch:
            try:
                embedded.append((memory, embedder.embed([memory.content])[0]))
            except EmbedderRefused as exc:
                refused.append(str(memory.pk))
                self.stderr.write(f"memory {memory.pk} refused by the embedder, left on its old vector: {exc}")
            except EmbedderUnavailable as exc:
                raise CommandError(f"{exc} Run the command again to continue.") from exc
        return embedded

    def _store_items(self, embedder: Embedder, batch_size: int) -> list[str]:
        """Re-embed the stale store items; returns the ids of those the embedder refused (reported, skipped)."""
        stale = store.items_to_reembed(embedder.model_id).only("pk", "value", "index_paths", "updated_at")
        total = stale.count()
        self.stdout.write(f"{total} LangGraph store items to re-embed with {embedder.model_id}")
        done = 0
        refused: list[str] = []
        batch = list(stale[:batch_size])
        while batch:
            try:
                store.reembed_items(batch, embedder=embedder)
            except EmbedderRefused:
                for item in batch:  # the refused ones, text by text; the others go on
                    try:
                        store.reembed_items([item], embedder=embedder)
                    except EmbedderRefused as exc:
                        refused.append(str(item.pk))
                        self.stderr.write(f"store item {item.pk} refused by the embedder, left as it was: {exc}")
                    except EmbedderUnavailable as exc:
                        raise CommandError(f"{exc} Run the command again to continue.") from exc
            except EmbedderUnavailable as exc:
                raise CommandError(f"{exc} {done} of {total} store items done; run the command again.") from exc
            done += len(batch)
            self.stdout.write(f"re-embedded {done}/{total} store items")
            # Onwards from the last key: a refused item is still stale, and must not come back.
            batch = list(stale.filter(pk__gt=batch[-1].pk)[:batch_size])
        unknown = (
            StoreItem.objects.filter(embedding__isnull=False, index_paths__isnull=True)
            .exclude(embedding_model=embedder.model_id)
            .count()
        )
        if unknown:
            self.stdout.write(
                f"{unknown} store items were indexed before their index paths were recorded: "
                "they are ranked again once put again"
            )
        return refused
