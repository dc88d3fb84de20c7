"""The memories suite's data: clustered vectors for many users, generated deterministically, and exact answers.

Real embeddings cluster by topic, within a topic by sub-topic, and share a common direction (they are
anisotropic); these vectors do too. There are TOPICS topic centres with SUBTOPICS sub-topic directions each;
each user talks about TOPICS_PER_USER topics, and each memory is `common + topic + sub-topic + noise`,
normalised. A query is made the same way with fresh noise, so its nearest neighbours are the memories of its
sub-topic (then of its topic) that happen to lie closest.

Everything derives from (SEED, user index): a user's memories can be regenerated at any time, which is how the
exact (brute-force) answers are computed without keeping a million vectors from the load step.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

import numpy as np

SEED = 20261125
#: Bump when the generator changes: a run finding rows of another version loads them again.
VERSION = "3"
TOPICS = 512
TOPICS_PER_USER = 12
PER_USER = 1000
SUBTOPICS = 16
COMMON_WEIGHT = 0.35
CENTRE_WEIGHT = 0.8
SUB_WEIGHT = 0.5
NOISE_WEIGHT = 0.45

# Row ids: a fixed high half marks the suite's rows, the next bits the data set's size, so that every size
# keeps its own rows (in its own tenant) and reruns find, never duplicate, what is loaded.
USER_ROWS = 0x6D656D6F72696573  # "memories"
GLOBAL_ROWS = 0x676C6F62616C6D65  # "globalme"
SIZE_CODES = {10_000: 1, 100_000: 2, 1_000_000: 3}


def user_name(user: int) -> str:
    return f"mb-u{user:05d}"


def langgraph_namespace(user: int) -> tuple[str, str]:
    return ("memories", f"u{user:05d}")


def memory_id(size: int, user: int, n: int) -> uuid.UUID:
    return uuid.UUID(int=(USER_ROWS << 64) | (SIZE_CODES[size] << 48) | (user << 20) | n)


def global_id(size: int, user: int, n: int) -> uuid.UUID:
    """The global memory that mirrors user memory (user, n): the same vector, as the tenant's shared knowledge."""
    return uuid.UUID(int=(GLOBAL_ROWS << 64) | (SIZE_CODES[size] << 48) | (user << 20) | n)


def id_range(high: int, size: int) -> tuple[uuid.UUID, uuid.UUID]:
    base = (high << 64) | (SIZE_CODES[size] << 48)
    return uuid.UUID(int=base), uuid.UUID(int=base + (1 << 48) - 1)


def content(user: int, n: int) -> str:
    return f"benchmark memory {n} of user {user}: a fact the agent learned while helping with one of their topics"


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    rows: np.ndarray = (matrix / norms).astype(np.float32)
    return rows


@lru_cache(maxsize=4)
def _space(dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([SEED, dims])
    common = _unit_rows(rng.standard_normal((1, dims)))[0]
    centres = _unit_rows(rng.standard_normal((TOPICS, dims)))
    subs = _unit_rows(rng.standard_normal((TOPICS * SUBTOPICS, dims))).reshape(TOPICS, SUBTOPICS, dims)
    return common, centres, subs


def _points(rng: np.random.Generator, topics: np.ndarray, dims: int) -> np.ndarray:
    common, centres, subs = _space(dims)
    sub = rng.integers(0, SUBTOPICS, len(topics))
    noise = rng.standard_normal((len(topics), dims)) / np.sqrt(dims)
    return _unit_rows(
        COMMON_WEIGHT * common + CENTRE_WEIGHT * centres[topics] + SUB_WEIGHT * subs[topics, sub] + NOISE_WEIGHT * noise
    )


def user_topics(user: int) -> np.ndarray:
    return np.random.default_rng([SEED, 1, user]).choice(TOPICS, TOPICS_PER_USER, replace=False)


def user_vectors(user: int, dims: int) -> np.ndarray:
    """The user's PER_USER memory vectors (float32, unit length), always the same for the same user."""
    rng = np.random.default_rng([SEED, 2, user, dims])
    topics = user_topics(user)[rng.integers(0, TOPICS_PER_USER, PER_USER)]
    return _points(rng, topics, dims)


def user_query(user: int, number: int, dims: int) -> np.ndarray:
    """A query about one of the user's topics."""
    rng = np.random.default_rng([SEED, 3, user, number, dims])
    query: np.ndarray = _points(rng, user_topics(user)[rng.integers(0, TOPICS_PER_USER, 1)], dims)[0]
    return query


def global_query(number: int, dims: int) -> np.ndarray:
    rng = np.random.default_rng([SEED, 4, number, dims])
    query: np.ndarray = _points(rng, rng.integers(0, TOPICS, 1), dims)[0]
    return query


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    """Row numbers of the k vectors with the highest cosine similarity to `query` (all are unit length)."""
    scores = vectors @ query
    top = np.argpartition(-scores, k)[:k]
    return [int(i) for i in top[np.argsort(-scores[top])]]


def rounded(vector: np.ndarray) -> list[float]:
    """A vector as JSON-friendly floats; 6 decimals keep the float4 ranking and trim request bodies."""
    return [round(float(x), 6) for x in vector]
