"""Roles in a real browser: support reads everything and can change nothing; compliance and admin pages refuse
support with the 403 page; a compliance user finds the forget-me entry in the navigation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from checkpoints_app.services import save_checkpoint
from conftest import World
from memories_app.services import NewMemory, create_memory
from sessions_app.models import AgentSession, EventType
from sessions_app.services import NewEvent, append_events, create_session
from tests.browser.login import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _session(world: World) -> AgentSession:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="roles-1")
    append_events(session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": "plan"})])
    save_checkpoint(session=session, node_id="plan", state={"step": 1})
    create_memory(tenant=world.acme.tenant, item=NewMemory(scope="user", user_id="alice", content="likes trains"))
    return session


def _mutating_controls(page: Page) -> list[str]:
    """Forms that POST (other than logging out) and links to action pages, as the page shows them."""
    forms = page.locator("form[method=post i]:not([action$='/logout/'])")
    links = page.locator(
        "a[href*='/revoke/'], a[href*='/admin/keys/new/'], a[href*='/lifecycle/jobs/'], "
        "a[href*='/lifecycle/policy/'], a[href*='/lifecycle/overrides/']"
    )
    return [*forms.evaluate_all("els => els.map(e => e.outerHTML.slice(0, 120))"), *links.all_inner_texts()]


def test_support_sees_every_read_page_without_a_single_mutation_control(
    page: Page, live_server: object, world: World
) -> None:
    session = _session(world)
    base = str(live_server)
    log_in(page, base, world.support)
    for path in (
        "/",
        "/sessions/",
        f"/sessions/{session.pk}/",
        f"/sessions/{session.pk}/checkpoints/",
        f"/users/{world.acme.tenant.pk}/alice/",
    ):
        response = page.goto(base + path)
        assert response is not None and response.status == 200, path
        assert _mutating_controls(page) == [], path
    navigation = page.get_by_role("navigation", name="Main")
    for entry in ("Forget-me", "API keys", "Tenants", "Lifecycle"):
        expect(navigation.get_by_role("link", name=entry)).to_have_count(0)


def test_support_gets_the_403_page_on_compliance_and_admin_urls(page: Page, live_server: object, world: World) -> None:
    base = str(live_server)
    log_in(page, base, world.support)
    for path in ("/compliance/erasures/", "/admin/keys/", "/admin/keys/new/", "/admin/tenants/", "/lifecycle/"):
        response = page.goto(base + path)
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        assert _mutating_controls(page) == [], path


def test_a_compliance_user_finds_the_forget_me_entry_but_no_admin_pages(
    page: Page, live_server: object, world: World
) -> None:
    base = str(live_server)
    log_in(page, base, world.compliance)
    page.goto(base + "/")
    navigation = page.get_by_role("navigation", name="Main")
    expect(navigation.get_by_role("link", name="API keys")).to_have_count(0)
    navigation.get_by_role("link", name="Forget-me").click()
    expect(page.get_by_role("heading", name="Forget-me requests")).to_be_visible()
    expect(page.get_by_role("button", name="File request")).to_be_visible()
    # The same detector that finds nothing for support finds compliance's form here.
    assert len(_mutating_controls(page)) >= 1

    response = page.goto(base + "/admin/keys/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
