"""A deterministic embedder with no dependencies: signed feature hashing of words, word pairs and
character trigrams, L2-normalised.

It knows nothing of meaning (synonyms score low) but texts that share most of their words and spelling
score high, which is what de-duplication and tests need. The same text always gives the same vector on
every machine, because the hash is BLAKE2b rather than Python's per-process `hash()`.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator, Sequence

from memories_app.embeddings.base import normalised

NATIVE_DIMENSIONS = 384
_WORD = re.compile(r"\w+", re.UNICODE)

# Words carry most of the signal; pairs add word order; trigrams make "colour"/"color" and typos close.
_WORD_WEIGHT = 1.0
_PAIR_WEIGHT = 0.5
_TRIGRAM_WEIGHT = 0.3


def _features(text: str) -> Iterator[tuple[str, float]]:
    words = _WORD.findall(text.lower())
    if not words:
        # Punctuation or symbols only: their character trigrams are all there is.
        compact = text.strip()
        for start in range(max(1, len(compact) - 2)):
            yield "c:" + compact[start : start + 3], _TRIGRAM_WEIGHT
        return
    for word in words:
        yield "w:" + word, _WORD_WEIGHT
        padded = f"^{word}$"
        for start in range(len(padded) - 2):
            yield "c:" + padded[start : start + 3], _TRIGRAM_WEIGHT
    for first, second in itertools.pairwise(words):
        yield f"p:{first} {second}", _PAIR_WEIGHT


class HashingEmbedder:
    description = (
        "Deterministic hashing embedder: no model, no network. Finds texts that share words; "
        "does not understand synonyms or paraphrase. Configure OpenAI or the local model for semantic search."
    )

    def __init__(self, dimensions: int = NATIVE_DIMENSIONS) -> None:
        self.dimensions = dimensions
        self.model_id = f"hashing-{dimensions}"

    def embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for feature, weight in _features(text):
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            number = int.from_bytes(digest, "big")
            sign = 1.0 if number & 1 else -1.0
            vector[(number >> 1) % self.dimensions] += sign * weight
        return normalised(vector)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]
