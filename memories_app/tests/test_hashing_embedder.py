from __future__ import annotations

from memories_app.embeddings.hashing import HashingEmbedder


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_the_same_text_always_gets_the_same_unit_vector():
    first, second = HashingEmbedder().embed(["Alice prefers dark mode.", "Alice prefers dark mode."])

    assert first == second
    assert abs(cosine(first, first) - 1) < 1e-9


def test_near_duplicates_score_high_and_unrelated_texts_score_low():
    embedder = HashingEmbedder()
    base, near, other = embedder.embed(
        ["Alice prefers dark mode in the editor.", "alice prefers dark-mode in her editor", "Invoices are due monthly."]
    )

    assert cosine(base, near) > 0.75
    assert cosine(base, other) < 0.2


def test_punctuation_only_text_still_gets_a_vector():
    (vector,) = HashingEmbedder().embed(["!!! ???"])

    assert any(vector)
