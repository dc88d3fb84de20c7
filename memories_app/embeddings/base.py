"""The one interface every embedder implements, and the error it raises when it cannot answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class EmbedderUnavailable(Exception):
    """The embedder could not produce vectors (down, timed out, misconfigured). Safe to retry later."""


class Embedder(Protocol):
    #: Stored with every vector; vectors of different models are never compared.
    model_id: str
    dimensions: int
    #: One line for the dashboard about what this provider means for search quality.
    description: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order. Raises EmbedderUnavailable."""
        ...


def normalised(vector: Sequence[float]) -> list[float]:
    norm = sum(value * value for value in vector) ** 0.5
    if norm == 0:
        return [float(value) for value in vector]
    return [value / norm for value in vector]
