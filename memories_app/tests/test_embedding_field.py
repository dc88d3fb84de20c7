"""The embedding column's quick text form stores exactly what pgvector's own text form stores."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.db.utils import DataError
from pgvector.django import VectorField

from memories_app.fields import EmbeddingField


def _same_in_postgres(ours: str | None, theirs: str | None) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::vector = %s::vector", [ours, theirs])
        return bool(cursor.fetchone()[0])


def test_vectors_of_every_magnitude_are_stored_as_pgvector_would_store_them(db):
    rng = random.Random(5)
    ours, theirs = EmbeddingField(), VectorField()
    for _ in range(200):
        vector = [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30) for _ in range(384)]
        assert _same_in_postgres(ours.get_prep_value(vector), theirs.get_prep_value(vector))
    assert _same_in_postgres(ours.get_prep_value([1, 0, True, -2.5]), theirs.get_prep_value([1, 0, True, -2.5]))


@pytest.mark.parametrize("component", [float("nan"), float("inf"), 1e39])
def test_a_component_postgres_cannot_store_is_refused_by_postgres_as_before(db, component):
    text = EmbeddingField().get_prep_value([0.5, component])
    assert text == VectorField().get_prep_value([0.5, component])
    with pytest.raises(DataError), connection.cursor() as cursor:
        cursor.execute("SELECT %s::vector", [text])
