"""Every API failure, whatever raised it, has the one JSON error shape and a request id."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import World
from tests.clients import AgentClient

pytestmark = pytest.mark.django_db

ERROR_KEYS = {"status", "code", "message", "details", "request_id"}


def test_an_unknown_api_route_is_a_json_404(world: World) -> None:
    response = world.acme.client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == "not_found"


def test_a_wrong_method_is_a_405_in_the_error_shape(world: World) -> None:
    response = world.acme.client.delete("/api/v1/whoami")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/json; charset=utf-8", "text/*, */*;q=0.1"])
def test_an_accept_header_that_takes_json_gets_json(world: World, accept: str) -> None:
    response = world.acme.client.get("/api/v1/whoami", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["tenant"] == "acme"


def test_an_accept_header_the_api_cannot_serve_is_a_406_in_the_error_shape(world: World) -> None:
    response = world.acme.client.get("/api/v1/whoami", HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable"


def test_the_request_id_is_echoed_in_the_header_and_the_error(world: World) -> None:
    response = AgentClient().get("/api/v1/whoami", HTTP_X_REQUEST_ID="trace-abc-123")
    assert response["X-Request-ID"] == "trace-abc-123"
    assert response.json()["error"]["request_id"] == "trace-abc-123"


def test_a_malformed_request_id_is_replaced_by_a_fresh_one(world: World) -> None:
    response = AgentClient().get("/api/v1/whoami", HTTP_X_REQUEST_ID="not ok; <script>")
    assert response["X-Request-ID"] != "not ok; <script>"
    assert len(response["X-Request-ID"]) == 32


def test_the_openapi_schema_describes_the_api() -> None:
    response = AgentClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/whoami" in schema["paths"]


def test_the_docs_page_serves_its_scripts_from_this_deployment() -> None:
    for path in ("/api/docs/", "/api/redoc/"):
        response = AgentClient().get(path)
        assert response.status_code == 200
        page = response.content.decode()
        assert "/static/drf_spectacular_sidecar/" in page
        assert "cdn." not in page


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_the_docs_pages_are_served_to_a_request_carrying_an_agents_api_key(
    world: World, path: str, header: str
) -> None:
    # A gateway that adds the key to every request, or someone trying the docs with theirs: the key's principal
    # holds no staff role, and the page's navigation must not ask it for one.
    value = f"Bearer {world.acme.raw_key}" if header == "HTTP_AUTHORIZATION" else world.acme.raw_key
    headers: dict[str, Any] = {header: value}
    response = AgentClient().get(path, **headers)

    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/" in response.content.decode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"user_id": "\\u0000"}', "NUL"),
        (b'{"user_id": "\\ud800"}', "surrogates"),
        (b'{"user_id": NaN}', "Malformed"),
        (b"[" * 100 + b"]" * 100, "nested"),
        (b"\xff\xfe", "UTF-8"),
        (b"", "empty"),
    ],
)
def test_bodies_postgres_could_not_store_are_refused_before_any_view_runs(
    world: World, raw: bytes, reason: str
) -> None:
    # Django sends bytes as they are; the stubs only admit str.
    response = world.acme.client.generic("POST", "/api/v1/sessions", raw, content_type="application/json")  # type: ignore[arg-type]
    assert response.status_code == 400
    assert reason in response.json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
def test_a_database_connection_that_drops_gives_a_clean_503_and_the_next_request_recovers(world: World) -> None:
    import httpx
    from django.db import connection

    from tests.servers import running, web_server

    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    with running(web_server(workers=1, threads=1)) as server:
        assert httpx.get(f"{server.url}/api/v1/sessions", headers=headers).status_code == 200
        # What a Postgres restart or failover does to the server's open connection.
        with connection.cursor() as cursor:
            cursor.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() "
                "and pid <> pg_backend_pid()"
            )
        failed = httpx.get(f"{server.url}/api/v1/sessions", headers=headers)
        recovered = httpx.get(f"{server.url}/api/v1/sessions", headers=headers)

    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "unavailable"
    assert failed.headers["Retry-After"] == "1"
    assert recovered.status_code == 200


def test_a_value_postgres_refuses_as_beyond_its_limits_is_a_400_not_an_outage_to_retry(world: World) -> None:
    import os

    from django.db import DatabaseError, connection, transaction

    from memory_admin.api.errors import exception_handler

    # A real refusal of class 54 (program_limit_exceeded): a b-tree entry over its ~2.7 kB, the way a save's
    # over-long keys would reach an index if no serializer counted their bytes first.
    with connection.cursor() as cursor:
        cursor.execute("create temporary table limit_probe (value text primary key)")
    with pytest.raises(DatabaseError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("insert into limit_probe values (%s)", [os.urandom(3000).hex()])

    response = exception_handler(refused.value, {})

    assert response is not None
    assert (response.status_code, response.data["error"]["code"]) == (400, "invalid")
    assert "Retry-After" not in response.headers
