"""/metrics while a migration (ALTER TABLE, VACUUM FULL, REINDEX) holds a table in ACCESS EXCLUSIVE mode: a scrape
reads table sizes without locking the tables, gives up on any other query waiting for the lock, and one scrape per
process reads at a time, so scrapes no longer take every web thread until the lock is released."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection
from django.test import Client

from checkpoints_app.models import Checkpoint
from conftest import World
from memories_app.models import Memory
from memory_admin.metrics import ScrapedGauges, forget_scraped_figures
from tests.concurrency import HELD_AT_MOST_SECONDS, access_exclusive
from tests.servers import running, web_server


@pytest.mark.django_db(transaction=True)
def test_scrapes_while_a_table_is_locked_are_answered_and_other_requests_are_served(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    # One worker with two threads: before, two scrapes waiting for the lock left nothing to serve the rest.
    with (
        running(web_server(workers=1, threads=2)) as server,
        access_exclusive(Checkpoint._meta.db_table) as held,
        ThreadPoolExecutor(6) as pool,
    ):
        scrapes = [pool.submit(httpx.get, f"{server.url}/metrics", timeout=30) for _ in range(4)]
        whoami = httpx.get(f"{server.url}/api/v1/whoami", headers=headers, timeout=30)
        healthz = httpx.get(f"{server.url}/healthz", timeout=30)
        answers = [scrape.result() for scrape in scrapes]
        still_held = not held.released.is_set()

    assert still_held  # everything was answered without waiting for the lock
    assert whoami.status_code == 200 and healthz.status_code == 200
    assert [answer.status_code for answer in answers] == [200] * 4
    # Sizes come from the catalog, which the lock does not hold: the locked table's is there too.
    assert any('memory_table_bytes{table="checkpoints"}' in answer.text for answer in answers)


@pytest.mark.django_db
def test_a_scrape_gives_up_on_a_query_waiting_for_a_lock_and_exports_the_rest(world: World) -> None:
    forget_scraped_figures()
    with access_exclusive(Memory._meta.db_table) as held:
        answer = Client().get("/metrics")
        still_held = not held.released.is_set()
    forget_scraped_figures()
    after = Client().get("/metrics").content.decode()

    assert still_held and answer.status_code == 200
    text = answer.content.decode()
    # The stored-data figures count memories (the gap shows in Grafana); the other collectors' are there.
    assert 'memory_entries{layer="pgvector"' not in text
    assert "memory_embedder_info{" in text
    assert 'memory_entries{layer="pgvector",scope="user"} 0.0' in after


@pytest.mark.django_db
def test_one_scrape_per_process_reads_the_database_while_the_others_get_the_previous_figures() -> None:
    reading, finish = threading.Event(), threading.Event()
    reads: list[int] = []

    def scrape() -> list[tuple[str, tuple[str, ...], float]]:
        reads.append(1)
        if len(reads) == 2:  # the second read waits, as one stuck behind a lock would
            reading.set()
            finish.wait(HELD_AT_MOST_SECONDS)
        return [("test_gauge", (), float(len(reads)))]

    gauges = ScrapedGauges("test", lambda: [("test_gauge", "a test gauge", [])], scrape, cache_seconds=0)

    def collect() -> float:
        try:
            (family,) = gauges.collect()
            return float(family.samples[0].value)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        assert pool.submit(collect).result() == 1
        slow = pool.submit(collect)
        assert reading.wait(10)
        meanwhile = pool.submit(collect).result(timeout=10)
        finish.set()
        assert slow.result() == 2

    assert meanwhile == 1  # the previous figures, without a read of its own
    assert len(reads) == 2
