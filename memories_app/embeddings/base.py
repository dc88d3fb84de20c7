"""The one interface every embedder implements, the error it raises when it cannot answer, and the check
every stored or searched vector passes."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Protocol


class EmbedderUnavailable(Exception):
    """The embedder could not produce vectors (down, timed out, misconfigured). Safe to retry later."""


class EmbedderRefused(EmbedderUnavailable):
    """The embedder answered that it will never embed these texts (a text over the model's context, say): the
    same request fails the same way however often it is sent. Whoever can do better than wait catches it
    first (the API answers 422, the profile outbox sets the entry aside, a promotion job skips the text); it is
    an EmbedderUnavailable so that code which only knows outages still stops safely on it."""


class Embedder(Protocol):
    #: Stored with every vector; vectors of different models are never compared.
    model_id: str
    dimensions: int
    #: One line for the dashboard about what this provider means for search quality.
    description: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order. Raises EmbedderUnavailable (EmbedderRefused when the
        texts themselves are refused)."""
        ...


# pgvector stores float4 and computes a cosine distance in float4 arithmetic (the sums of squares and of
# products of the two vectors). A vector longer than MAX_NORM would overflow those sums (the score comes out
# 0 instead of 1), one shorter than MIN_NORM underflow them (NaN: never found). Within these bounds both
# sums stay many orders of magnitude inside float4's range, for any pair of vectors that pass; embedders'
# vectors are unit length.
MIN_NORM = 1e-10
MAX_NORM = 1e10


def vector_problem(vector: Sequence[float]) -> str | None:
    """Why this vector cannot be stored and compared, judged on the float4 values pgvector would keep; None
    when it can. (Built-ins over the whole vector: a generator per component costs ~0.4 ms per 384 values.)"""
    try:
        stored = array("f", vector)
    except (TypeError, OverflowError):
        return "every component must be a number"
    # hypot scales internally: no overflow or underflow of its own on the way to the length.
    norm = math.hypot(*stored)
    if not math.isfinite(norm):
        return "every component must be a finite number within the float4 range"
    if norm == 0:
        return "an all-zero vector has no direction to compare (components below 1.4e-45 are zero in float4)"
    if not MIN_NORM <= norm <= MAX_NORM:
        return f"the vector's length is {norm:.3g}; it must be between {MIN_NORM:g} and {MAX_NORM:g}"
    return None


def normalised(vector: Sequence[float]) -> list[float]:
    """The vector scaled to unit length. EmbedderUnavailable when it has no direction (all zeros, or a
    component that is not a finite number)."""
    values = [float(value) for value in vector]
    # hypot, not the root of a sum of squares: components of 1e300 (or 1e-300) would overflow (underflow) the
    # sum, and the vector come out all zeros.
    norm = math.hypot(*values)
    if not math.isfinite(norm):
        raise EmbedderUnavailable("Embeddings are unavailable: the embedder returned a component that is not finite.")
    if norm == 0:
        raise EmbedderUnavailable("Embeddings are unavailable: the embedder returned an all-zero vector.")
    return [value / norm for value in values]
