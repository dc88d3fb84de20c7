"""The open API keys page, unfiltered, shows a key created and revoked elsewhere in any tenant, past the 200th too."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from conftest import World
from tenants_app.services import issue_api_key, revoke_api_key
from tests.browser.login import log_in
from tests.factories import TenantFactory
from tests.servers import ServerProcess, running, uvicorn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def asgi_server(world: World) -> Iterator[ServerProcess]:
    with running(uvicorn()) as server:
        yield server


def test_a_key_of_the_206th_tenant_appears_and_is_revoked_live_on_the_unfiltered_keys_page(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    for number in range(205):
        TenantFactory.create(name=f"t{number:03d}")
    zeta = TenantFactory.create(name="zeta")  # last by name: the page used to watch the first 200 only
    log_in(page, asgi_server.url, world.admin)
    page.goto(f"{asgi_server.url}/admin/keys/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")

    key, _ = issue_api_key(tenant=zeta, name="zeta bot")
    row = page.locator(f"#keys-table tr[data-key='{key.pk}']")
    expect(row).to_contain_text("zeta bot", timeout=5_000)
    expect(row).to_contain_text("active")

    revoke_api_key(api_key_id=key.pk)
    expect(row).to_have_class(re.compile(r"\brevoked\b"), timeout=5_000)
    expect(page.locator("#keys-table tr[data-key]").first).to_have_attribute("data-key", str(key.pk))
