"""A person logs in to the dashboard in a real browser and sees the health of each layer."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from conftest import STAFF_PASSWORD, World

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_support_logs_in_and_sees_every_layer_healthy(page: Page, live_server: object, world: World) -> None:
    page.goto(f"{live_server}/")
    expect(page).to_have_url(f"{live_server}/login/?next=/")

    page.get_by_label("Username").fill("sam-support")
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    for layer in ("postgres", "pgvector", "redis"):
        card = page.locator(f"[data-layer='{layer}']")
        expect(card.locator(".status")).to_have_text("healthy")
    expect(page.locator(".badge.role-support")).to_have_text("support")


def test_a_wrong_password_keeps_the_visitor_on_the_login_page(page: Page, live_server: object, world: World) -> None:
    page.goto(f"{live_server}/login/")
    page.get_by_label("Username").fill("sam-support")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_contain_text("did not match")
