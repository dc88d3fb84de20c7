"""The overview's write rates (events and memories per minute) and the active embedding provider."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compliance_app.models import ErasureRequest, ErasureStatus
from compliance_app.services import file_erasure
from conftest import World, logged_in
from memories_app.embeddings import reset_embedder
from memories_app.models import Memory
from memories_app.services import NewMemory, create_memories
from memory_admin.dashboard.selectors import WriteRate, events_since, write_rates
from sessions_app.models import Event, EventType
from sessions_app.services import NewEvent, append_events, create_session

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _hashing_embedder() -> Iterator[None]:
    with override_settings(EMBEDDING_PROVIDER="hashing", EMBEDDING_DIMENSIONS=0):
        reset_embedder()
        yield
    reset_embedder()


def _append(world: World, count: int, session_id: str = "s") -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id=session_id)
    append_events(
        session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": f"n{i}"}) for i in range(count)]
    )


def _age_events(minutes: int, *, first: int) -> None:
    """Make the `first` oldest events look `minutes` old (ids keep their order)."""
    ids = list(Event.objects.order_by("id").values_list("id", flat=True)[:first])
    Event.objects.filter(id__in=ids).update(created_at=timezone.now() - timedelta(minutes=minutes))


def _rates(rates: list[WriteRate]) -> dict[tuple[str, int], int]:
    return {(rate.what, rate.minutes): rate.count for rate in rates}


def test_write_rates_count_events_and_memories_in_the_last_5_and_60_minutes(world: World) -> None:
    _append(world, 40)
    _age_events(200, first=10)  # too old for either window
    ids = list(Event.objects.order_by("id").values_list("id", flat=True))
    Event.objects.filter(id__in=ids[10:25]).update(created_at=timezone.now() - timedelta(minutes=30))
    create_memories(
        tenant=world.acme.tenant,
        items=[NewMemory(scope="user", user_id="alice", content=f"fact {i}") for i in range(6)],
    )
    Memory.objects.filter(pk__in=list(Memory.objects.values_list("pk", flat=True)[:2])).update(
        created_at=timezone.now() - timedelta(minutes=20)
    )

    rates = _rates(write_rates())

    assert rates == {("events", 5): 15, ("events", 60): 30, ("memories", 5): 4, ("memories", 60): 6}


def test_write_rates_are_zero_with_no_writes_at_all(world: World) -> None:
    assert _rates(write_rates()) == {("events", 5): 0, ("events", 60): 0, ("memories", 5): 0, ("memories", 60): 0}


def test_counting_recent_events_probes_the_primary_key_not_the_whole_table(world: World) -> None:
    _append(world, 300)
    _age_events(120, first=250)

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + _events_since_sql(), {"cutoff": timezone.now() - timedelta(minutes=5)})
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert events_since(timezone.now() - timedelta(minutes=5)) == 50
    assert "Seq Scan" not in plan, plan


def _events_since_sql() -> str:
    from memory_admin.dashboard import selectors

    return selectors._EVENTS_SINCE_SQL


def test_the_overview_shows_write_rates_per_minute(world: World) -> None:
    _append(world, 20)

    response = logged_in(world.support).get("/")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-what="events" data-minutes="5"><td>events</td><td>last 5 min</td><td>20</td><td>4.0</td>' in page
    assert 'data-what="memories" data-minutes="60"><td>memories</td><td>last 60 min</td><td>0</td><td>0.0</td>' in page


def test_the_overview_says_the_hashing_embedder_matches_words_only(world: World) -> None:
    response = logged_in(world.support).get("/")

    page = response.content.decode()
    assert response.context["embedder"].provider == "hashing"
    assert "<code>hashing-384</code>" in page
    assert "word matching only" in page
    assert "does not understand synonyms or paraphrase" in page


def test_the_overview_names_a_real_language_model_without_the_warning(world: World) -> None:
    with override_settings(EMBEDDING_PROVIDER="openai", OPENAI_API_KEY="sk-test", OPENAI_BASE_URL="http://127.0.0.1:9"):
        reset_embedder()
        response = logged_in(world.support).get("/")

    page = response.content.decode()
    assert "openai:text-embedding-3-small-1536" in page
    assert "understands paraphrase" in page
    assert "word matching only" not in page


def test_a_misconfigured_embedder_is_explained_not_a_500(world: World) -> None:
    with override_settings(EMBEDDING_PROVIDER="openai", OPENAI_API_KEY=None):
        reset_embedder()
        response = logged_in(world.support).get("/")

    assert response.status_code == 200
    assert "not usable" in response.content.decode()
    assert "needs OPENAI_API_KEY" in response.content.decode()


def test_the_overview_costs_the_same_queries_however_many_writes(world: World) -> None:
    client = logged_in(world.support)
    client.get("/")
    with CaptureQueriesContext(connection) as quiet:
        client.get("/")
    _append(world, 500)
    create_memories(
        tenant=world.acme.tenant, items=[NewMemory(scope="user", user_id="bob", content=f"m {i}") for i in range(50)]
    )
    with CaptureQueriesContext(connection) as busy:
        assert client.get("/").status_code == 200

    assert len(busy) == len(quiet) <= 14, [q["sql"] for q in busy]


def _file_erasure(world: World, user_id: str, tenant: Any = None) -> ErasureRequest:
    return file_erasure(
        tenant=tenant or world.acme.tenant, user_id=user_id, legal_basis="gdpr_art_17", filed_by="cora-compliance"
    )


def test_the_overview_shows_the_oldest_open_erasure_request_without_naming_the_person(world: World) -> None:
    oldest = _file_erasure(world, "alice-the-person")
    ErasureRequest.objects.filter(pk=oldest.pk).update(
        filed_at=timezone.now() - timedelta(days=40), due_at=timezone.now() - timedelta(days=10)
    )
    _file_erasure(world, "bob-the-person", tenant=world.outsider.tenant)

    response = logged_in(world.support).get("/")

    page = response.content.decode()
    card = page.split('id="oldest-erasure"')[1].split("</section>")[0]
    assert response.context["oldest_erasure"].pk == oldest.pk
    assert "<dd>acme</dd>" in card and "pending" in card and "overdue" in card
    assert "alice-the-person" not in page and "bob-the-person" not in page


def test_the_overview_says_when_no_erasure_request_is_open(world: World) -> None:
    done = _file_erasure(world, "carol")
    ErasureRequest.objects.filter(pk=done.pk).update(status=ErasureStatus.VERIFIED)

    page = logged_in(world.support).get("/").content.decode()

    assert "None: every forget-me request is verified or rejected." in page
