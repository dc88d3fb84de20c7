"""An admin creates an API key in a real browser and sees it exactly once; support sees no admin pages."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from conftest import STAFF_PASSWORD, World

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_an_admin_creates_a_key_and_sees_it_once(page: Page, live_server: object, world: World) -> None:
    _log_in(page, str(live_server), "ada-admin")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    page.get_by_role("link", name="Create an API key").click()
    page.get_by_label("Tenant:", exact=True).select_option(label="acme")
    page.get_by_label("Key name").fill("booking bot")
    page.get_by_role("button", name="Create key").click()

    key = page.locator("#new-key")
    expect(key).to_have_text(re.compile(r"^mk_[0-9a-f]{12}_\S+$"))
    raw_key = key.inner_text()

    page.reload()
    expect(page.locator("#key-gone")).to_contain_text("shown once and cannot be shown again")
    expect(page.locator("#new-key")).to_have_count(0)
    assert raw_key not in page.content()

    page.get_by_role("link", name="Back to the API keys").click()
    row = page.locator("#keys-table tr", has_text="booking bot")
    expect(row).to_contain_text("acme")
    expect(row).to_contain_text(raw_key.split("_")[1])


def test_support_sees_no_admin_navigation_and_gets_the_403_page(page: Page, live_server: object, world: World) -> None:
    _log_in(page, str(live_server), "sam-support")

    navigation = page.get_by_role("navigation", name="Main")
    expect(navigation.get_by_role("link", name="Users")).to_be_visible()
    expect(navigation.get_by_role("link", name="API keys")).to_have_count(0)
    expect(navigation.get_by_role("link", name="Tenants")).to_have_count(0)

    response = page.goto(f"{live_server}/admin/keys/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_role("button", name="Create key")).to_have_count(0)
