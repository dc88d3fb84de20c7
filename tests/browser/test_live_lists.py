"""Live lists in a real browser against the ASGI server: a memory an agent stores appears on the open user page,
a deleted one disappears, the person's erasure empties it; a new session appears at the top of the open sessions
list, linked to its page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings
from playwright.sync_api import Browser, Page, expect

from compliance_app.services import approve_erasure, file_erasure
from compliance_app.tasks import purge_erasure
from conftest import World
from memories_app.embeddings import reset_embedder
from memories_app.profiles import update_profile
from memories_app.services import (
    NewMemory,
    create_memories,
    create_memory,
    delete_memory,
    update_memory,
)
from memory_admin.live import publish, session_group
from sessions_app.services import append_messages, create_session
from tests.browser.login import log_in
from tests.factories import TenantFactory
from tests.servers import ServerProcess, running, uvicorn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def asgi_server(world: World) -> Iterator[ServerProcess]:
    with override_settings(EMBEDDING_PROVIDER="hashing", EMBEDDING_DIMENSIONS=0):
        reset_embedder()
        with running(uvicorn(env={"EMBEDDING_PROVIDER": "hashing", "EMBEDDING_DIMENSIONS": "0"})) as server:
            yield server
    reset_embedder()


def test_a_memory_stored_and_deleted_through_the_api_shows_live_on_the_user_page(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    create_memory(tenant=world.acme.tenant, item=NewMemory(scope="user", user_id="alice", content="likes trains"))
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/users/{world.acme.tenant.pk}/alice/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
    user_memories = page.locator("#memories-user")
    expect(user_memories.locator("tr[data-memory]")).to_have_count(1)

    response = world.acme.client.post(
        "/api/v1/memories", {"scope": "user", "user_id": "alice", "content": "is allergic to peanuts"}, format="json"
    )
    assert response.status_code == 201, response.content
    memory_id = response.json()["id"]

    new_row = user_memories.locator(f"tr[data-memory='{memory_id}']")
    expect(new_row).to_contain_text("is allergic to peanuts", timeout=3_000)
    expect(user_memories.locator(".count")).to_have_text("2")

    assert world.acme.client.delete(f"/api/v1/memories/{memory_id}").status_code == 204
    expect(new_row).to_have_count(0, timeout=3_000)
    expect(user_memories.locator(".count")).to_have_text("1")


def test_a_new_session_appears_at_the_top_of_the_open_sessions_list(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    create_session(tenant=world.acme.tenant, user_id="alice", session_id="older")
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/sessions/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")

    create_session(tenant=world.acme.tenant, user_id="bob", session_id="newest")

    first = page.locator("#sessions-table tbody tr").first
    expect(first).to_have_attribute("data-session", "newest", timeout=3_000)
    expect(first).to_contain_text("acme")
    first.get_by_role("link", name="newest").click()
    expect(page.get_by_role("heading", name="Session newest")).to_be_visible()


def test_an_open_session_page_empties_itself_when_the_person_is_erased(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="to-forget")
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/sessions/{session.pk}/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")

    # What compliance_app's erasure publishes for each of the person's sessions when it commits.
    publish([session_group(session.pk)], {"type": "session.erased", "tenant": str(world.acme.tenant.pk)})

    expect(page.get_by_role("heading", name="Erased")).to_be_visible(timeout=3_000)
    expect(page.locator("#timeline")).to_have_count(0)
    expect(page.get_by_text("to-forget")).to_have_count(0)


def test_older_memories_than_the_page_shows_change_its_count_not_its_rows_when_edited_or_deleted(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    items = [NewMemory(scope="user", user_id="alice", content=f"fact number {i}") for i in range(101)]
    created = create_memories(tenant=world.acme.tenant, items=items)
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/users/{world.acme.tenant.pk}/alice/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
    user_memories = page.locator("#memories-user")
    rows = user_memories.locator("tr[data-memory]")
    count = user_memories.locator(".count")
    # The page's catch-up (from a little before its own time) sends all 101 again: the one not shown stays so.
    expect(count).to_have_text("101")
    expect(rows).to_have_count(100)
    shown = set(rows.evaluate_all("rows => rows.map(r => r.dataset.memory)"))
    (oldest,) = [memory for memory in created if str(memory.pk) not in shown]

    update_memory(
        tenant=world.acme.tenant, memory_id=oldest.pk, actor="agent", expected_versions=None, content="fact 0, fixed"
    )
    newest = create_memory(tenant=world.acme.tenant, item=NewMemory(scope="user", user_id="alice", content="new"))
    expect(rows.first).to_have_attribute("data-memory", str(newest.pk), timeout=3_000)
    expect(count).to_have_text("102")
    expect(rows).to_have_count(101)
    expect(user_memories.locator(f"tr[data-memory='{oldest.pk}']")).to_have_count(0)

    delete_memory(tenant=world.acme.tenant, memory_id=oldest.pk, expected_versions=None)
    expect(count).to_have_text("101", timeout=3_000)
    expect(rows).to_have_count(101)


def test_an_open_user_page_empties_itself_when_the_persons_erasure_is_approved(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    create_memory(tenant=world.acme.tenant, item=NewMemory(scope="user", user_id="alice", content="likes trains"))
    update_profile(tenant=world.acme.tenant, user_id="alice", preferences={"seat": "aisle"}, expected_versions=None)
    create_session(tenant=world.acme.tenant, user_id="alice", session_id="night-train")
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/users/{world.acme.tenant.pk}/alice/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")

    request = file_erasure(tenant=world.acme.tenant, user_id="alice", legal_basis="gdpr_art_17", filed_by="staff:cora")
    approve_erasure(request_id=request.pk, decided_by="staff:ann")

    expect(page.get_by_role("heading", name="Erased")).to_be_visible(timeout=3_000)
    main = page.locator("main")
    for shown_before in ("likes trains", "aisle", "night-train", "alice"):
        expect(main).not_to_contain_text(shown_before)
    assert "alice" not in page.title()


def test_a_user_page_back_from_missing_more_changes_than_one_catch_up_batch_gets_them_all(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    # One more than a catch-up batch, all made within its margin: a reconnect's catch-up starts with them.
    items = [NewMemory(scope="user", user_id="alice", content=f"fact number {i}") for i in range(201)]
    create_memories(tenant=world.acme.tenant, items=items)
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/users/{world.acme.tenant.pk}/alice/")
    live_status = page.locator("#live-status")
    expect(live_status).to_have_attribute("data-status", "live")
    newest = page.locator("#memories-user tr[data-memory]").first
    newest_id = newest.get_attribute("data-memory")
    assert newest_id is not None

    asgi_server.stop()
    expect(live_status).to_have_attribute("data-status", "offline")
    # Changed while the page was away: the last row of the catch-up's order (oldest first).
    update_memory(
        tenant=world.acme.tenant, memory_id=newest_id, actor="agent", expected_versions=None, content="fixed fact"
    )
    asgi_server.start()

    expect(live_status).to_have_attribute("data-status", "live", timeout=15_000)
    expect(page.locator(f"#memories-user tr[data-memory='{newest_id}']")).to_contain_text("fixed fact")


def _erase(world: World, user_id: str) -> None:
    request = file_erasure(tenant=world.acme.tenant, user_id=user_id, legal_basis="gdpr_art_17", filed_by="staff:cora")
    approve_erasure(request_id=request.pk, decided_by="staff:ann")


@pytest.mark.parametrize("url", ["/sessions/", "/sessions/?tenant={tenant}"], ids=["all-tenants", "one-tenant"])
def test_an_open_sessions_list_drops_the_rows_of_a_person_as_their_erasure_is_approved(
    page: Page, asgi_server: ServerProcess, world: World, url: str
) -> None:
    create_session(tenant=world.acme.tenant, user_id="ivy", session_id="ivy-chat")
    create_session(tenant=world.acme.tenant, user_id="bob", session_id="bob-chat")
    log_in(page, asgi_server.url, world.support)
    page.goto(asgi_server.url + url.format(tenant=world.acme.tenant.pk))
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
    rows = page.locator("#sessions-table tbody tr")
    expect(rows).to_have_count(2)

    _erase(world, "ivy")

    expect(page.locator("#sessions-table tr[data-session='ivy-chat']")).to_have_count(0, timeout=3_000)
    expect(page.locator("#sessions-table")).not_to_contain_text("ivy")
    expect(rows).to_have_count(1)


def test_open_pages_back_from_a_blip_drop_a_person_erased_and_purged_meanwhile(
    browser: Browser, asgi_server: ServerProcess, world: World
) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="ivy", session_id="ivy-chat")
    append_messages(session=session, messages=[{"role": "user", "content": "my name is ivy smith"}])
    create_session(tenant=world.acme.tenant, user_id="bob", session_id="bob-chat")
    context = browser.new_context()
    listing, session_page = context.new_page(), context.new_page()
    log_in(listing, asgi_server.url, world.support)
    listing.goto(f"{asgi_server.url}/sessions/?tenant={world.acme.tenant.pk}")
    session_page.goto(f"{asgi_server.url}/sessions/{session.pk}/")
    for open_page in (listing, session_page):
        expect(open_page.locator("#live-status")).to_have_attribute("data-status", "live")

    asgi_server.stop()
    expect(session_page.locator("#live-status")).to_have_attribute("data-status", "offline")
    request = file_erasure(tenant=world.acme.tenant, user_id="ivy", legal_basis="gdpr_art_17", filed_by="staff:cora")
    approve_erasure(request_id=request.pk, decided_by="staff:ann")
    purge_erasure(str(request.pk))
    asgi_server.start()

    expect(session_page.get_by_role("heading", name="Erased")).to_be_visible(timeout=15_000)
    expect(session_page.locator("main")).not_to_contain_text("ivy")
    assert "ivy" not in session_page.title()
    expect(listing.locator("#sessions-table tr[data-session='ivy-chat']")).to_have_count(0, timeout=15_000)
    expect(listing.locator("#sessions-table tbody tr")).to_have_count(1)
    context.close()


def test_a_new_session_of_a_tenant_past_the_first_fifty_appears_on_the_open_sessions_list(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    last = [TenantFactory.create(name=f"zz-{number:02d}") for number in range(60)][-1]
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/sessions/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")

    create_session(tenant=last, user_id="u", session_id="far-away")

    first = page.locator("#sessions-table tbody tr").first
    expect(first).to_have_attribute("data-session", "far-away", timeout=3_000)
    expect(first).to_contain_text("zz-59")
