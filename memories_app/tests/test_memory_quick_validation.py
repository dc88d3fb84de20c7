"""Memory writes check a plainly well-formed body without DRF's per-field machinery; anything else goes to the
documented serializer. The quick check must never accept what the serializer refuses, nor read anything
differently from it."""

from __future__ import annotations

from typing import Any

import pytest

from memories_app.api.serializers import MemoryCreateSerializer, quick_memory_fields

VECTOR = [0.25, -1, 3.5e-8]

PLAIN: list[dict[str, Any]] = [
    {"scope": "user", "user_id": "alice", "content": "Likes tea."},
    {"scope": "global", "content": "x", "metadata": {"a": [1, {"b": None}]}, "embedding": VECTOR},
    {"scope": "session", "session_id": "s-1", "content": "  spaced content stays  ", "user_id": ""},
    {"scope": "user", "user_id": "u" * 256, "content": "c", "embedding": []},
]

ODD: list[Any] = [
    {"scope": "user", "user_id": " alice ", "content": "c"},  # trimmed by the serializer
    {"scope": "user", "user_id": "u" * 257, "content": "c"},
    {"scope": "user", "session_id": "s" * 129, "content": "c"},
    {"scope": "nope", "content": "c"},
    {"scope": "user", "content": ""},
    {"scope": "user", "content": "a\x00b"},
    {"scope": "user", "content": 5},
    {"scope": "user"},
    {"content": "c"},
    {"scope": "user", "content": "c", "extra": 1},
    {"scope": "user", "content": "c", "metadata": None},
    {"scope": "user", "content": "c", "metadata": []},
    {"scope": "user", "content": "c", "embedding": [1, True]},
    {"scope": "user", "content": "c", "embedding": ["1"]},
    {"scope": "user", "content": "c", "embedding": [0.5] * 2001},
    {"scope": "user", "content": "c", "embedding": [10**400]},
    {"scope": "user", "content": "c", "user_id": None},
    ["not", "an", "object"],
    None,
]


def _documented(body: Any) -> dict[str, Any] | None:
    serializer = MemoryCreateSerializer(data=body)
    return dict(serializer.validated_data) if serializer.is_valid() else None


@pytest.mark.parametrize("body", PLAIN)
def test_a_plain_body_is_read_quickly_exactly_as_the_serializer_reads_it(body):
    quick = quick_memory_fields(body)
    assert quick is not None
    assert quick == _documented(body)


@pytest.mark.parametrize("body", ODD)
def test_anything_less_plain_is_left_to_the_serializer(body):
    assert quick_memory_fields(body) is None


def test_a_batch_with_one_odd_item_is_refused_by_the_serializer_and_nothing_is_stored(world):
    from memories_app.models import Memory

    response = world.acme.client.post(
        "/api/v1/memories/batch",
        {"memories": [{"scope": "user", "user_id": "alice", "content": "fine"}, {"scope": "user", "content": ""}]},
        format="json",
    )

    assert response.status_code == 400
    assert "memories" in response.json()["error"]["details"]["fields"]
    assert not Memory.objects.filter(tenant=world.acme.tenant).exists()


def test_a_user_id_with_spaces_is_stored_exactly_as_given(world):
    # As every other endpoint keeps it (and an erasure of "  alice " finds it): the id is the tenant's own.
    response = world.acme.client.post(
        "/api/v1/memories", {"scope": "user", "user_id": "  alice ", "content": "Likes tea."}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["user_id"] == "  alice "
