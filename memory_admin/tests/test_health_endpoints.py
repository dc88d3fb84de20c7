"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import time

import pytest
from django.test import Client, override_settings

from conftest import World, logged_in


def test_healthz_answers_without_touching_the_layers() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_postgres_pgvector_and_redis_ready() -> None:
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready" and body["degraded"] == []
    assert body["layers"]["postgres"]["ok"] and body["layers"]["postgres"]["detail"].startswith("PostgreSQL 18")
    assert body["layers"]["pgvector"]["detail"].startswith("vector 0.8")
    assert body["layers"]["redis"]["ok"]


@pytest.mark.django_db
def test_readyz_stays_ready_but_reports_redis_degraded_when_redis_does_not_answer(unused_tcp_port: int) -> None:
    dead = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{unused_tcp_port}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    with override_settings(CACHES=dead):
        response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["redis"]
    assert body["layers"]["redis"]["ok"] is False
    assert body["layers"]["postgres"]["ok"] is True


def test_metrics_answer_loopback_callers() -> None:
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content or b"python_info" in response.content


def test_metrics_are_not_public() -> None:
    response = Client(REMOTE_ADDR="203.0.113.9").get("/metrics")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@override_settings(METRICS_TOKEN="scrape-token-for-tests")
def test_metrics_accept_the_configured_bearer_token() -> None:
    client = Client(REMOTE_ADDR="203.0.113.9")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-for-tests").status_code == 200


@override_settings(METRICS_TOKEN="scrape-token-for-tests")
@pytest.mark.parametrize("value", ["Bearer caf\u00e9", "Bearer scrape-token-for-t\u00e9sts", "Bearer \u2603"])
def test_a_non_ascii_bearer_value_on_metrics_is_refused_not_a_500(value: str) -> None:
    client = Client(REMOTE_ADDR="203.0.113.9")

    assert client.get("/metrics", HTTP_AUTHORIZATION=value).status_code == 403
    status, _ = _wsgi_get("/metrics", HTTP_AUTHORIZATION=value, REMOTE_ADDR="203.0.113.9")
    assert not status.startswith(("200", "500"))


@override_settings(METRICS_TOKEN="jeton-caf\u00e9")
def test_a_non_ascii_metrics_token_is_accepted_as_the_utf8_bytes_a_scraper_sends() -> None:
    # A server hands header values over as their bytes read as latin-1 (WSGI, and Django's ASGI handler).
    sent = "Bearer jeton-caf\u00e9".encode().decode("latin-1")
    client = Client(REMOTE_ADDR="203.0.113.9")

    assert client.get("/metrics", HTTP_AUTHORIZATION=sent).status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer jeton-caf\u00e9").status_code == 403


def test_metrics_answer_an_admin_from_anywhere(world: World) -> None:
    client = logged_in(world.admin)
    client.defaults["REMOTE_ADDR"] = "203.0.113.9"
    assert client.get("/metrics").status_code == 200
    support = logged_in(world.support)
    support.defaults["REMOTE_ADDR"] = "203.0.113.9"
    assert support.get("/metrics").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_the_liveness_and_readiness_probes_pass_whatever_the_allowed_hosts() -> None:
    # The Dockerfile's HEALTHCHECK asks http://127.0.0.1:PORT/healthz; with ALLOWED_HOSTS set to the public
    # name, Django refused that Host with a 400 and every container would have been marked unhealthy.
    import httpx

    from tests.servers import running, web_server

    with running(web_server(workers=1, threads=1, env={"ALLOWED_HOSTS": "memory.example.com"})) as server:
        answer = httpx.get(f"{server.url}/healthz", timeout=5)
        ready = httpx.get(f"{server.url}/readyz", timeout=5)
        head = httpx.head(f"{server.url}/readyz", timeout=5)
        page = httpx.get(f"{server.url}/login/", timeout=5)

    assert (answer.status_code, answer.content) == (200, b'{"status": "ok"}')
    # An orchestrator's readiness probe (Host: the pod's IP) is answered too, with the layers' health.
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready" and ready.json()["layers"]["postgres"]["ok"]
    assert ready.headers["Cache-Control"].startswith("max-age=0")
    # A HEAD has the GET's headers without its body; the length is a fresh answer's (its ping time varies).
    assert (head.status_code, head.content) == (200, b"")
    assert abs(int(head.headers["Content-Length"]) - int(ready.headers["Content-Length"])) <= 8
    assert page.status_code == 400  # the pages still answer only to the allowed names


@pytest.mark.django_db(transaction=True)
def test_readiness_answers_within_its_limit_when_postgres_does_not_answer_and_recovers_after() -> None:
    # A hung Postgres held every /readyz call (and with it a web thread) for good, until no thread served
    # anything. Held here by a lock the probe's query waits for, as it would for a stopped server.
    from django.db import connection, transaction

    from memory_admin.health import check_postgres

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        held = check_postgres(timeout=0.5)
        waited = time.monotonic() - started
    after = check_postgres()

    assert [(layer.name, layer.ok, layer.detail) for layer in held] == [
        ("postgres", False, "no answer within 0.5 s"),
        ("pgvector", False, "no answer within 0.5 s"),
    ]
    assert waited < 2
    assert [layer.ok for layer in after] == [True, True]


def _wsgi_get(path: str, **headers: str) -> tuple[str, bytes]:
    from io import BytesIO

    from memory_admin.api.handler import SplitWSGIHandler

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "web",
        "SERVER_PORT": "8000",
        "wsgi.input": BytesIO(b""),
        "wsgi.url_scheme": "http",
        **headers,
    }
    started: list[str] = []
    body = b"".join(SplitWSGIHandler()(environ, lambda status, headers, exc_info=None: started.append(status)))
    return started[0], body


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="scrape-token-for-tests")
def test_a_scrape_with_the_token_is_answered_whatever_host_it_names() -> None:
    # Prometheus asks by a pod's IP or a compose service's name: Django refused that Host with a 400.
    scraper = {"HTTP_HOST": "web:8000", "REMOTE_ADDR": "10.1.2.3"}

    status, body = _wsgi_get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-for-tests", **scraper)
    refused, _ = _wsgi_get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **scraper)

    assert status == "200 OK" and b"python_info" in body
    assert not refused.startswith("200")


@pytest.mark.django_db(transaction=True)
@override_settings(ALLOWED_HOSTS=["memory.example.com"])
def test_the_websockets_server_answers_the_liveness_and_readiness_probes_whatever_the_allowed_hosts() -> None:
    # The image's HEALTHCHECK (http://127.0.0.1:PORT/healthz) runs in the websockets container too: a 400 there
    # marked it unhealthy.
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from memory_admin.asgi import application

    def get(path: str) -> tuple[int, bytes]:
        sent: list[dict[str, object]] = []
        requests = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, object]:
            if requests:
                return requests.pop()
            await asyncio.Event().wait()  # the client stays connected until the response is sent
            raise AssertionError("unreachable")

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8001")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8001),
        }
        # On a thread of its own, as a server runs it: the suite's thread may already run an event loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, application(scope, receive, send)).result(timeout=30)
        body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")  # type: ignore[misc]
        return int(sent[0]["status"]), body  # type: ignore[call-overload]

    assert get("/healthz") == (200, b'{"status": "ok"}')
    status, body = get("/readyz")
    assert status == 200 and b'"postgres": {"ok": true' in body
    assert get("/login/")[0] == 400  # the pages still answer only to the allowed names
