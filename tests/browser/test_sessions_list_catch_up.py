"""An open sessions list whose socket drops for a while (a deploy restarts the ASGI server) is, once back, what a
reload would show at its top: every session created meanwhile in its place, none of the rows erased meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from compliance_app.services import approve_erasure, file_erasure
from conftest import World
from sessions_app.models import AgentSession
from sessions_app.services import create_session
from tests.browser.login import log_in
from tests.servers import ServerProcess, running, uvicorn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROWS = "#sessions-table tbody tr[data-pk]"


@pytest.fixture
def asgi_server(world: World) -> Iterator[ServerProcess]:
    with running(uvicorn()) as server:
        yield server


@contextmanager
def _blip(page: Page, server: ServerProcess) -> Iterator[None]:
    """The socket drops while the test writes, then comes back and catches up."""
    server.stop()
    expect(page.locator("#live-status")).to_have_attribute("data-status", "offline")
    yield
    server.start()
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live", timeout=30_000)


def _shown(page: Page) -> list[str | None]:
    rows = page.locator(ROWS)
    return [rows.nth(index).get_attribute("data-session") for index in range(rows.count())]


def _erase(world: World, user_id: str) -> None:
    request = file_erasure(
        tenant=world.acme.tenant,
        user_id=user_id,
        identifiers=[],
        legal_basis="gdpr_art_17",
        note="",
        filed_by="staff:a",
    )
    approve_erasure(request_id=request.pk, decided_by="staff:b")


def test_a_list_back_from_a_blip_gets_more_new_sessions_than_one_batch_and_drops_an_erased_row_past_the_500th(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    ivy, _ = create_session(tenant=world.acme.tenant, user_id="ivy", session_id="ivy-chat")
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/sessions/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
    with _blip(page, asgi_server):  # a busy morning: 520 rows above ivy's
        for number in range(520):
            create_session(tenant=world.acme.tenant, user_id="bob", session_id=f"day-{number:03d}")
    expect(page.locator(ROWS)).to_have_count(521, timeout=30_000)

    with _blip(page, asgi_server):  # ivy's row is the 521st: past one frame's worth of row ids
        _erase(world, "ivy")
        for number in range(250):  # more than one batch of the catch-up
            create_session(tenant=world.acme.tenant, user_id="bob", session_id=f"late-{number:03d}")

    expect(page.locator(ROWS)).to_have_count(770, timeout=30_000)
    expect(page.locator(f"{ROWS}[data-pk='{ivy.pk}']")).to_have_count(0)
    shown = _shown(page)
    assert shown[0] == "late-249" and shown[-1] == "day-000"
    assert len(set(shown)) == len(shown)


def test_the_first_page_after_its_first_catch_up_is_newest_first_with_nothing_older_than_its_last_row(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    # 80 sessions within the catch-up's margin before the page's time: 30 of them are on the older pages.
    for number in range(80):
        create_session(tenant=world.acme.tenant, user_id="u", session_id=f"s-{number:03d}")
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/sessions/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")

    assert _shown(page) == [f"s-{number:03d}" for number in range(79, 29, -1)]
    expect(page.get_by_role("link", name="Older sessions →")).to_have_count(1)


def test_sessions_created_during_a_blip_go_where_they_sort_on_a_list_that_has_no_older_pages(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    base = timezone.now()

    def created(session_id: str, seconds_before: float) -> None:
        session, _ = create_session(tenant=world.acme.tenant, user_id="u", session_id=session_id)
        AgentSession.objects.filter(pk=session.pk).update(created_at=base - timedelta(seconds=seconds_before))

    for session_id, seconds_before in (("a", 12), ("b", 8), ("c", 4)):
        created(session_id, seconds_before)
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/sessions/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")
    assert _shown(page) == ["c", "b", "a"]

    with _blip(page, asgi_server):
        # Committed after the page was rendered, stamped before some of its rows (a long transaction).
        created("late", 10)
        created("later-still", 14)
        create_session(tenant=world.acme.tenant, user_id="u", session_id="new")

    expect(page.locator(ROWS)).to_have_count(6)
    assert _shown(page) == ["new", "c", "b", "late", "a", "later-still"]


def test_a_session_id_taken_again_after_an_erasure_shows_on_a_list_back_from_a_blip(
    page: Page, asgi_server: ServerProcess, world: World
) -> None:
    old, _ = create_session(tenant=world.acme.tenant, user_id="ivy", session_id="support-chat")
    other, _ = create_session(tenant=world.acme.tenant, user_id="bob", session_id="other")
    log_in(page, asgi_server.url, world.support)
    page.goto(f"{asgi_server.url}/sessions/")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")

    with _blip(page, asgi_server):
        _erase(world, "ivy")
        new, created = create_session(tenant=world.acme.tenant, user_id="carol", session_id="support-chat")
        assert created and new.pk != old.pk

    rows = page.locator(ROWS)
    expect(rows).to_have_count(2)
    assert [rows.nth(index).get_attribute("data-pk") for index in range(2)] == [str(new.pk), str(other.pk)]
    expect(rows.first).to_contain_text("carol")
