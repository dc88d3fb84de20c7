"""Ids agents write may hold a carriage return, which an HTML parser reads back as a line feed wherever it
meets one in markup: the open pages must still follow the right person and the right session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings
from playwright.sync_api import Page, expect

from compliance_app.services import approve_erasure, file_erasure
from conftest import World
from memories_app.embeddings import reset_embedder
from memories_app.services import NewMemory, create_memory
from sessions_app.models import SessionStatus
from sessions_app.services import create_session, update_session
from tests.browser.login import log_in
from tests.servers import ServerProcess, running, uvicorn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def asgi_server(world: World) -> Iterator[ServerProcess]:
    with override_settings(EMBEDDING_PROVIDER="hashing", EMBEDDING_DIMENSIONS=0):
        reset_embedder()
        with running(uvicorn(env={"EMBEDDING_PROVIDER": "hashing", "EMBEDDING_DIMENSIONS": "0"})) as server:
            yield server
    reset_embedder()


def test_the_page_of_a_user_id_with_a_carriage_return_follows_that_person_and_not_the_one_with_a_line_feed(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    tenant = world.acme.tenant
    create_memory(tenant=tenant, item=NewMemory(scope="user", user_id="bob\r", content="likes tea"))
    create_memory(tenant=tenant, item=NewMemory(scope="user", user_id="bob\n", content="likes coffee"))
    log_in(page, asgi_server.url, world.compliance)
    page.goto(f"{asgi_server.url}/users/{tenant.pk}/bob%0D/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
    rows = page.locator("#memories-user tr[data-memory] td.content")
    expect(rows).to_have_text(["likes tea"])

    for user_id, content in (("bob\n", "the other bob's secret"), ("bob\r", "drinks it green")):
        response = world.acme.client.post(
            "/api/v1/memories", {"scope": "user", "user_id": user_id, "content": content}, format="json"
        )
        assert response.status_code == 201, response.content

    expect(rows).to_have_text(["drinks it green", "likes tea"], timeout=3_000)

    erasure = file_erasure(
        tenant=tenant, user_id="bob\r", identifiers=[], legal_basis="gdpr_art_17", note="", filed_by="staff:x"
    )
    approve_erasure(request_id=erasure.pk, decided_by="staff:y")

    expect(page.get_by_role("heading", name="Erased")).to_be_visible(timeout=3_000)
    expect(page.locator("#memories-user")).to_have_count(0)


def test_the_sessions_list_keeps_apart_session_ids_that_differ_by_a_carriage_return_and_a_line_feed(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    tenant = world.acme.tenant
    with_cr, _ = create_session(tenant=tenant, user_id="alice", session_id="night\r")
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/sessions/?tenant={tenant.pk}")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
    rows = page.locator("#sessions-table tbody tr")
    expect(rows).to_have_count(1)

    with_lf, _ = create_session(tenant=tenant, user_id="bob", session_id="night\n")
    expect(rows).to_have_count(2, timeout=3_000)
    update_session(session=with_cr, status=SessionStatus.PAUSED)

    expect(page.locator(f"tr[data-pk='{with_cr.pk}'] .status")).to_have_text("paused", timeout=3_000)
    expect(page.locator(f"tr[data-pk='{with_lf.pk}'] .status")).to_have_text("active")
