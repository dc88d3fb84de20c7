"""PostgreSQL restarted under load: while it is down every API answer is a clean 503 with Retry-After in the one
error shape, it recovers by itself when Postgres is back, and nothing acknowledged is lost. The dashboard's pages
answer their 503 page the same way, and are served again once Postgres is back.

The server runs against a PostgreSQL cluster of this test's own, holding a copy of the test database (the
suite's shared cluster is never stopped)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection

from conftest import World, logged_in
from tests.faults.servers import ThrowawayPostgres
from tests.load import WriteLoad, checkpoint_writer, message_writer
from tests.servers import running, web_server

pytestmark = pytest.mark.django_db(transaction=True)

SESSIONS = ["chat-a", "chat-b", "steps"]


def _events(client: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    url: str | None = f"/api/v1/sessions/{session_id}/events?limit=1000"
    while url:
        page = client.get(url)
        assert page.status_code == 200, page.text
        events += page.json()["results"]
        url = page.json()["next"]
    return events


def _assert_clean_503(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.status_code, response.text[:300])
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["status"] == 503 and error["code"] == "unavailable" and error["request_id"]
    assert set(error) == {"status", "code", "message", "details", "request_id"}


def test_a_postgres_restart_answers_clean_503s_then_recovers_with_nothing_lost(world: World, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    database = ThrowawayPostgres(tmp_path / "postgres")
    database.start()
    try:
        database.copy_database(connection.settings_dict)  # the tenants and keys of `world` come along
        with (
            running(web_server(workers=1, threads=8, env={"DATABASE_URL": database.url})) as server,
            httpx.Client(base_url=server.url, headers=headers, timeout=10) as client,
        ):
            for session_id in SESSIONS:
                assert client.post("/api/v1/sessions", json={"id": session_id, "user_id": "alice"}).status_code == 201
            load = WriteLoad(server.url, headers, timeout=10, survive_disconnects=True)
            load.start(
                message_writer(load, "chat-a", name="a0"),
                message_writer(load, "chat-a", name="a1"),
                message_writer(load, "chat-b", name="b0"),
                checkpoint_writer(load, "steps", name="s0", patches=True),
            )
            try:
                load.wait_for(40)
                database.stop()
                down_at = load.acknowledged
                for response in (
                    client.post(
                        "/api/v1/sessions/chat-b/context/messages",
                        json={"messages": [{"role": "user", "content": "while down"}]},
                    ),
                    client.get("/api/v1/sessions/chat-b"),
                    client.get("/api/v1/sessions/chat-b/context"),
                    client.get("/api/v1/sessions/steps/checkpoints/latest"),
                    client.get("/api/v1/sessions"),
                ):
                    _assert_clean_503(response)
                ready = client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["layers"]["postgres"]["ok"] is False
                time.sleep(0.5)  # the writers keep knocking on a server whose database is away

                database.start()
                deadline = time.monotonic() + 20
                while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                    time.sleep(0.1)
                load.wait_for_more(40)
            finally:
                load.finish()

            answers = dict(load.statuses)
            assert set(answers) <= {201, 503}, f"only acknowledgements and clean refusals: {answers} {load.refusals}"
            assert load.statuses[503] >= 1, "the writers met the outage"
            for session_id in ("chat-a", "chat-b"):
                events = _events(client, session_id)
                assert [event["version"] for event in events] == list(range(1, len(events) + 1)), "gap-free"
                stored = {event["version"]: event["payload"]["content"] for event in events}
                mine = {version: text for (s, version), text in load.messages.items() if s == session_id}
                assert {version: stored.get(version) for version in mine} == mine
                assert "while down" not in stored.values()
            verify = client.get("/api/v1/sessions/steps/checkpoints/verify").json()
            assert verify["valid"] is True, verify
        ids = ",".join(f"'{pk}'" for pk in load.checkpoints)  # UUIDs the server returned
        found = database.query(f"select count(*) from checkpoints_app_checkpoint where id in ({ids})")  # noqa: S608
        assert int(found) == len(load.checkpoints)
    finally:
        database.stop()
    print(
        f"\nFAULT postgres restart: acknowledged {len(load.messages)} appends + {len(load.checkpoints)} checkpoints "
        f"({down_at} before the stop); all found; answers {answers}"
    )


def _assert_503_page(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.status_code, response.text[:300])
    assert response.headers["Retry-After"] == "1" and response.headers["Content-Type"].startswith("text/html")
    assert "<h1>The database is unavailable</h1>" in response.text


@pytest.mark.parametrize("pool", [False, True], ids=["persistent-connection", "pool"])
def test_dashboard_pages_answer_the_503_page_while_postgres_is_away_and_are_served_once_it_is_back(
    world: World, tmp_path: Path, pool: bool
) -> None:
    session = logged_in(world.support).cookies[settings.SESSION_COOKIE_NAME].value
    database = ThrowawayPostgres(tmp_path / "postgres")
    database.start()
    try:
        database.copy_database(connection.settings_dict)  # the staff member and their session come along
        # One thread: each request below meets the connection the previous one left.
        env = {"DATABASE_URL": database.url, "DATABASE_POOL": str(pool).lower(), "DATABASE_POOL_TIMEOUT": "1"}
        with (
            running(web_server(workers=1, threads=1, env=env)) as server,
            httpx.Client(base_url=server.url, cookies={settings.SESSION_COOKIE_NAME: session}, timeout=10) as page,
        ):
            assert page.get("/sessions/").status_code == 200
            database.stop()
            for path in ("/", "/sessions/", "/users/", "/login/"):
                _assert_503_page(page.get(path))
            database.start()
            assert [page.get("/sessions/").status_code for _ in range(3)] == [200] * 3

            # Restarted between two requests: the connections kept from before are dead. Each fails one request
            # with the 503 page and is dropped: the one persistent connection, or each the pool held.
            database.stop()
            database.start()
            answers = [page.get("/sessions/") for _ in range(settings.DATABASE_POOL_MAX + 3)]
            broken = [response.status_code for response in answers].index(200)
            assert 1 <= broken <= (settings.DATABASE_POOL_MAX if pool else 1)
            for response in answers[:broken]:
                _assert_503_page(response)
            assert [response.status_code for response in answers[broken:]] == [200] * (len(answers) - broken)
    finally:
        database.stop()
