"""What the OpenAPI fuzzer found, kept as regressions (each was a 500)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conftest import World

pytestmark = pytest.mark.django_db

# Python takes UTC offsets up to ±23:59, PostgreSQL only up to ±15:59.
FAR_OFFSET = "2030-05-13T23:21:38+22:14"


@pytest.mark.parametrize("url", ["/api/v1/sessions", "/api/v1/memories"])
@pytest.mark.parametrize("name", ["created_after", "created_before"])
def test_a_date_filter_with_an_offset_postgres_does_not_take_is_compared_in_utc(
    world: World, url: str, name: str
) -> None:
    response = world.acme.client.get(url, {name: FAR_OFFSET})

    assert response.status_code == 200, response.content


def test_a_far_offset_filter_selects_by_the_instant_it_names(world: World) -> None:
    world.acme.client.post("/api/v1/sessions", {"id": "now", "user_id": "alice"}, format="json")
    instant = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    # The same instant written with a +22:00 offset: a day later on the clock, not a day later in time.
    written = instant.astimezone(datetime.strptime("+2200", "%z").tzinfo).isoformat()

    after = world.acme.client.get("/api/v1/sessions", {"created_after": written}).json()["results"]
    before = world.acme.client.get("/api/v1/sessions", {"created_before": written}).json()["results"]

    assert [s["id"] for s in before] == ["now"] and after == []


def test_a_date_filter_with_no_utc_form_is_a_400(world: World) -> None:
    response = world.acme.client.get("/api/v1/memories", {"created_after": "0001-01-01T00:00:00+05:00"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
