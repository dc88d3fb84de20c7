"""Redis holds JSON written with escapes (`json.dumps` spells "ë" as \\u00eb, a line break as \\n): the scan still
finds the person in it, whatever the alphabet of their id."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app.tests.people import erased
from conftest import World
from memory_admin.health import redis_client

pytestmark = pytest.mark.django_db


def _idempotency_records(world: World) -> list[Any]:
    client = redis_client()
    return [client.get(key) or b"" for key in client.scan_iter(match=f"mem:idem:{world.acme.tenant.pk}:*")]


@pytest.mark.parametrize(
    ("person", "mention"),
    [
        ("kate-target", "met {} at the desk"),
        ("zoë-müller", "met {} at the desk"),
        ("ana-🦊-fox", "met {} at the desk"),  # outside the BMP: a surrogate pair once escaped
        ("kate-target", "visitors:\n{}"),  # after an escaped line break
    ],
)
def test_a_replay_in_redis_that_names_the_person_fails_the_scan(
    world: World, person: str, mention: str, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    assert client.post("/api/v1/sessions", {"id": "s-person", "user_id": person}, format="json").status_code == 201
    assert client.post("/api/v1/sessions", {"id": "bob-s", "user_id": "bob"}, format="json").status_code == 201
    # Bob's metadata names them, then no longer does: Postgres has forgotten, the first update's replay has not.
    named = {"metadata": {"met": mention.format(person)}}
    assert client.patch("/api/v1/sessions/bob-s", named, format="json", HTTP_IDEMPOTENCY_KEY="m1").status_code == 200
    etag = client.get("/api/v1/sessions/bob-s")["ETag"]
    cleared = client.patch("/api/v1/sessions/bob-s", {"metadata": {"met": None}}, format="json", HTTP_IF_MATCH=etag)
    assert cleared.status_code == 200, cleared.content

    request = erased(world, person, django_capture_on_commit_callbacks)

    assert any(b"bob-s" in record and b'"met"' in record for record in _idempotency_records(world))
    assert request.status == "failed", request.verification
    assert request.verification["findings"]["redis:keys"] == 1


def test_a_longer_word_that_merely_contains_the_escaped_id_is_not_the_person(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    person = "zoë-müller"
    assert client.post("/api/v1/sessions", {"id": "s-person", "user_id": person}, format="json").status_code == 201
    assert client.post("/api/v1/sessions", {"id": "bob-s", "user_id": "bob"}, format="json").status_code == 201
    other = {"metadata": {"met": f"{person}ß and x{person}"}}
    assert client.patch("/api/v1/sessions/bob-s", other, format="json", HTTP_IDEMPOTENCY_KEY="m1").status_code == 200

    request = erased(world, person, django_capture_on_commit_callbacks)

    assert request.status == "verified", request.verification
