"""The forget-me workflow in a real browser, by two compliance users: one files, the same one cannot approve (four
eyes), a second approves, the purge runs in a real Celery worker while the page follows it live, and the receipt
shows a clean verification. Support staff see none of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from compliance_app.models import ErasureRequest
from compliance_app.tests.people import fill_every_layer
from conftest import World
from memory_admin.celery import app
from sessions_app.models import AgentSession
from tests.factories import StaffFactory
from tests.servers import ServerProcess, running, uvicorn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALICE = "alice-7f3a9c"


@pytest.fixture
def asgi_server(world: World) -> Iterator[ServerProcess]:
    with running(uvicorn()) as server:
        yield server


def _logged_in_page(browser: Browser, server: ServerProcess, user: User) -> Page:
    client = Client()
    client.force_login(user)
    context = browser.new_context()
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def test_two_compliance_users_take_a_request_from_filing_to_a_clean_receipt(
    browser: Browser, asgi_server: ServerProcess, world: World
) -> None:
    fill_every_layer(world, ALICE, "ALICE-MARK")
    fill_every_layer(world, "bob-2c81de", "BOB-MARK")
    second = StaffFactory.create(username="carl-compliance", role="compliance")

    # Cora files the request. (The servers hash passwords as in production, so the browser starts logged in.)
    page = _logged_in_page(browser, asgi_server, world.compliance)
    page.goto(asgi_server.url)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Forget-me").click()
    form = page.locator("form", has=page.get_by_role("button", name="File request"))
    form.locator("select[name=tenant]").select_option(label="acme")
    form.locator("input[name=user_id]").fill(ALICE)
    form.locator("textarea[name=identifiers]").fill("alice@example.com")
    form.locator("select[name=legal_basis]").select_option("gdpr_art_17")
    page.get_by_role("button", name="File request").click()
    expect(page.locator("#erasure-status")).to_have_text("pending")
    expect(page.locator("#layers tr[data-layer='sessions'] td").nth(1)).to_have_text("1")
    expect(page.locator("#layers tr[data-layer='events'] td").nth(1)).not_to_have_text("0")
    request_url = page.url

    # Four eyes: no approve button for the one who filed, and a forged approval is refused.
    expect(page.get_by_role("button", name="Approve and erase now")).to_have_count(0)
    expect(page.get_by_text("another compliance user must decide")).to_be_visible()
    token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    forged = page.request.post(request_url, form={"action": "approve", "csrfmiddlewaretoken": token or ""})
    assert forged.ok  # the page answers with its message, not an error page
    page.reload()
    expect(page.locator("#erasure-status")).to_have_text("pending")
    assert ErasureRequest.objects.get().status == "pending"
    page.context.close()

    # Carl approves; a real worker purges while the page follows it live.
    approver = _logged_in_page(browser, asgi_server, second)
    approver.goto(request_url)
    expect(approver.locator("#live-status")).to_have_attribute("data-status", "live")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        approver.get_by_role("button", name="Approve and erase now").click()
        expect(approver.locator("#erasure-status")).to_have_text("verified", timeout=30_000)

    expect(approver.locator("#layers tr[data-layer='events'] td.purged")).not_to_have_text("—")
    audit = approver.locator("#audit")
    for action in ("filed", "approved", "erased_logically", "purge_started", "purged", "verified"):
        expect(audit).to_contain_text(action)
    assert ALICE not in approver.content()  # the identifiers left the request once verified
    approver.get_by_role("link", name="Receipt").click()
    expect(approver.get_by_role("heading", name="Erasure receipt")).to_be_visible()
    expect(approver.locator("article.receipt")).to_contain_text("clean")
    assert ALICE not in approver.content() and "alice@example.com" not in approver.content()
    assert not AgentSession.all_objects.filter(user_id=ALICE).exists()
    assert AgentSession.objects.filter(user_id="bob-2c81de").count() == 1
    approver.context.close()


def test_support_staff_see_no_compliance_pages_or_actions(
    browser: Browser, asgi_server: ServerProcess, world: World
) -> None:
    from compliance_app import services

    request = services.file_erasure(
        tenant=world.acme.tenant, user_id=ALICE, legal_basis="gdpr_art_17", filed_by="staff:cora-compliance"
    )
    page = _logged_in_page(browser, asgi_server, world.support)
    page.goto(asgi_server.url)

    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Forget-me")).to_have_count(0)
    for path in ("/compliance/erasures/", f"/compliance/erasures/{request.pk}/", "/compliance/exports/"):
        response = page.goto(f"{asgi_server.url}{path}")
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        expect(page.get_by_role("button", name="File request")).to_have_count(0)
        expect(page.get_by_role("button", name="Approve and erase now")).to_have_count(0)
    assert ErasureRequest.objects.get().status == "pending"
    page.context.close()
