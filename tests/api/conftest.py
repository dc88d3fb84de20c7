"""Fixtures of the generic API suites: acme's objects, built through the API on first use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from conftest import World
from memories_app.embeddings import reset_embedder
from tests.api.recipes import AcmeObjects


@pytest.fixture
def objs(world: World) -> AcmeObjects:
    return AcmeObjects(world.acme)


@pytest.fixture(autouse=True)
def _hashing_embedder() -> Iterator[None]:
    """Memories are embedded by the deterministic hashing embedder: no network, no model download."""
    with override_settings(EMBEDDING_PROVIDER="hashing", EMBEDDING_DIMENSIONS=0):
        reset_embedder()
        yield
    reset_embedder()
