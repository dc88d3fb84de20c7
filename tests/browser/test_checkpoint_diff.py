"""Support staff pick two checkpoints of a session and see what changed between them, highlighted."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from checkpoints_app.services import save_checkpoint
from conftest import World
from sessions_app.services import append_messages, create_session
from tests.browser.login import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_diff_between_two_picked_checkpoints_highlights_the_changed_path(
    page: Page, live_server: object, world: World
) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="diff-1")
    user = {"name": "alice"}
    save_checkpoint(session=session, node_id="plan", state={"user": user, "plan": "draft", "tools": {"search": 1}})
    save_checkpoint(session=session, node_id="search", state={"user": user, "plan": "draft", "tools": {"search": 2}})
    append_messages(session=session, messages=[{"role": "user", "content": "make it a table for two"}])
    session.refresh_from_db()
    final = {"user": user, "plan": "final", "tools": {"search": 2}, "booked": True}
    save_checkpoint(session=session, node_id="book", state=final)
    log_in(page, str(live_server), world.support)

    page.goto(f"{live_server}/sessions/{session.pk}/")
    page.get_by_role("link", name="Checkpoints, integrity and diffs →").click()
    expect(page.locator("#integrity")).to_contain_text("Chain verified")
    page.get_by_label("compare from #1").check()
    page.get_by_label("compare to #3").check()
    page.get_by_role("button", name="Diff the selected checkpoints").click()

    expect(page.get_by_role("heading", name="#1 → #3")).to_be_visible()
    changed = page.locator("#diff-tree tr[data-path='/plan']")
    expect(changed).to_have_class("diff-changed")
    expect(changed).to_contain_text("~ changed")
    expect(changed.locator("del")).to_have_text('"draft"')
    expect(changed.locator("ins")).to_have_text('"final"')
    expect(page.locator("#diff-tree tr[data-path='/booked']")).to_contain_text("+ added")
    expect(page.locator("#diff-events")).to_contain_text("make it a table for two")

    unchanged = page.locator("#diff-tree tr[data-path='/user']")
    expect(unchanged).to_contain_text("same")
    expect(unchanged).to_be_visible()
    page.get_by_label("Only show what changed").check()
    expect(unchanged).to_be_hidden()
    expect(changed).to_be_visible()

    page.locator("#patch summary").click()
    expect(page.locator("#patch pre")).to_contain_text('"op": "replace"')
