"""OpenAI embeddings (or any server speaking the same protocol) through the official `openai` client.

Inputs are sent in batches of EMBEDDING_BATCH_SIZE; the client retries connection errors, 408/409/429 and
5xx answers OPENAI_MAX_RETRIES times with exponential backoff, each attempt bounded by
OPENAI_TIMEOUT_SECONDS. Whatever still fails becomes EmbedderUnavailable with a message naming the cause.
"""

from __future__ import annotations

from collections.abc import Sequence

import openai

from memories_app.embeddings.base import EmbedderUnavailable, normalised

NATIVE_DIMENSIONS = 1536


def make_client(*, api_key: str, base_url: str | None, timeout: float, max_retries: int) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)


def describe_failure(exc: openai.OpenAIError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "the OpenAI-compatible server did not answer in time"
    if isinstance(exc, openai.APIConnectionError):
        return "the OpenAI-compatible server cannot be reached"
    if isinstance(exc, openai.AuthenticationError):
        return "the OpenAI-compatible server refused OPENAI_API_KEY"
    if isinstance(exc, openai.APIStatusError):
        return f"the OpenAI-compatible server answered HTTP {exc.status_code}"
    return f"the OpenAI client failed ({type(exc).__name__})"


class OpenAIEmbedder:
    description = (
        "OpenAI embeddings: semantic search that understands paraphrase; every write and text search "
        "calls the configured server."
    )

    def __init__(
        self,
        *,
        client: openai.OpenAI,
        model: str,
        dimensions: int,
        request_dimensions: bool,
        batch_size: int,
    ) -> None:
        self.client = client
        self.model = model
        self.dimensions = dimensions
        # Only text-embedding-3 models accept `dimensions`; send it only when a size was configured.
        self.request_dimensions = request_dimensions
        self.batch_size = batch_size
        self.model_id = f"openai:{model}-{dimensions}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._embed_batch(list(texts[start : start + self.batch_size])))
        return vectors

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        try:
            if self.request_dimensions:
                response = self.client.embeddings.create(model=self.model, input=batch, dimensions=self.dimensions)
            else:
                response = self.client.embeddings.create(model=self.model, input=batch)
        except openai.OpenAIError as exc:
            raise EmbedderUnavailable(f"Embeddings are unavailable: {describe_failure(exc)}.") from exc
        items = sorted(response.data, key=lambda item: item.index)
        if len(items) != len(batch):
            raise EmbedderUnavailable(
                f"Embeddings are unavailable: the server returned {len(items)} vectors for {len(batch)} texts."
            )
        vectors = [list(item.embedding) for item in items]
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise EmbedderUnavailable(
                    f"Embeddings are unavailable: model {self.model} returned {len(vector)} dimensions, "
                    f"EMBEDDING_DIMENSIONS expects {self.dimensions}."
                )
        return [normalised(vector) for vector in vectors]
