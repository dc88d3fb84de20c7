"""From a user's page to the list of all their sessions, filtered there as any other filter is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from conftest import World
from sessions_app.models import SessionStatus
from sessions_app.services import create_session, update_session
from tests.browser.login import log_in
from tests.servers import ServerProcess, running, uvicorn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def asgi_server(world: World) -> Iterator[ServerProcess]:
    with running(uvicorn()) as server:
        yield server


def test_a_users_sessions_list_keeps_them_through_other_filters_until_the_user_filter_is_cleared(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    tenant = world.acme.tenant
    for i in range(51):
        create_session(tenant=tenant, user_id="ann", session_id=f"s{i}")
    paused, _ = create_session(tenant=tenant, user_id="ann", session_id="on-hold")
    update_session(session=paused, status=SessionStatus.PAUSED)
    create_session(tenant=tenant, user_id="mallory", session_id="ann-private")
    also_paused, _ = create_session(tenant=tenant, user_id="mallory", session_id="also-on-hold")
    update_session(session=also_paused, status=SessionStatus.PAUSED)
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/users/{tenant.pk}/ann/")

    page.get_by_role("link", name="All of this user's sessions →").click()
    rows = page.locator("#sessions-table tbody tr")
    expect(page.locator("#user-filter")).to_contain_text("Sessions of ann")
    expect(rows).to_have_count(50)
    expect(page.locator("#sessions-table")).not_to_contain_text("mallory")

    page.locator("select[name=status]").select_option("paused")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-session", "on-hold")

    page.get_by_role("link", name="Clear the user filter").click()
    expect(page.locator("#user-filter")).to_have_count(0)
    expect(rows).to_have_count(2)
    expect(page.locator("#sessions-table")).to_contain_text("also-on-hold")
