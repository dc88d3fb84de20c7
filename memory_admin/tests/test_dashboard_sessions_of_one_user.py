"""The sessions list filtered to one person exactly (`user_id=`), where a user's page sends for all their
sessions: not the search, which also matches session ids that start with the user id."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from conftest import World, logged_in
from sessions_app.services import create_session

pytestmark = pytest.mark.django_db


def _listed(response: Any) -> list[tuple[str, str]]:
    return [(s.user_id, s.session_id) for s in response.context["page"].rows]


def test_the_link_to_all_of_a_users_sessions_lists_theirs_and_not_a_session_named_after_them(world: World) -> None:
    tenant = world.acme.tenant
    for i in range(51):  # more than the user page shows, so it links to the list
        create_session(tenant=tenant, user_id="ann", session_id=f"s{i}")
    create_session(tenant=tenant, user_id="mallory", session_id="ann-private")
    client = logged_in(world.support)

    user_page = client.get(f"/users/{tenant.pk}/ann/").content.decode()
    link = re.search(r'href="(/sessions/\?[^"]*)">All of this user', user_page)
    assert link is not None
    listed = client.get(html.unescape(link.group(1)))

    assert {user for user, _ in _listed(listed)} == {"ann"}
    assert "ann-private" not in listed.content.decode()


def test_the_user_filter_matches_the_id_exactly_within_the_tenant(world: World) -> None:
    acme, other = world.acme.tenant, world.outsider.tenant
    for user_id, session_id in (("ann", "a1"), ("ann ", "a2"), ("anna", "a3"), ("bob", "ann")):
        create_session(tenant=acme, user_id=user_id, session_id=session_id)
    create_session(tenant=other, user_id="ann", session_id="elsewhere")
    client = logged_in(world.support)

    in_acme = client.get("/sessions/", {"tenant": str(acme.pk), "user_id": "ann"})
    spaced = client.get("/sessions/", {"tenant": str(acme.pk), "user_id": "ann "})
    everywhere = client.get("/sessions/", {"user_id": "ann"})

    assert _listed(in_acme) == [("ann", "a1")]
    assert _listed(spaced) == [("ann ", "a2")]
    assert sorted(_listed(everywhere)) == [("ann", "a1"), ("ann", "elsewhere")]


def test_the_user_filter_shows_as_an_active_filter_with_a_link_that_clears_it_and_keeps_the_others(
    world: World,
) -> None:
    tenant = world.acme.tenant
    create_session(tenant=tenant, user_id="ann", session_id="a1")
    create_session(tenant=tenant, user_id="bob", session_id="b1")
    client = logged_in(world.support)

    page = client.get("/sessions/", {"tenant": str(tenant.pk), "user_id": "ann", "status": "active"})
    content = page.content.decode()
    shown = re.search(r'<span class="active-filter" id="user-filter">(.*?)</span>', content, re.S)
    assert shown is not None
    assert "<code>ann</code>" in shown.group(1)
    assert '<input type="hidden" name="user_id" value="ann"' in shown.group(1)  # the Filter button keeps it
    clear = re.search(r'<a href="([^"]*)"[^>]*>', shown.group(1))
    assert clear is not None
    cleared = client.get(f"/sessions/{html.unescape(clear.group(1))}")

    assert sorted(_listed(cleared)) == [("ann", "a1"), ("bob", "b1")]
    assert cleared.context["form"].cleaned_data["tenant"] == tenant
    assert cleared.context["form"].cleaned_data["status"] == "active"
    assert 'id="user-filter"' not in cleared.content.decode()


def test_the_user_filter_stays_on_the_older_sessions_page_and_holds_any_id(world: World) -> None:
    tenant = world.acme.tenant
    for i in range(51):
        create_session(tenant=tenant, user_id="bob\r", session_id=f"s{i}")
    create_session(tenant=tenant, user_id="bob\n", session_id="other")
    client = logged_in(world.support)

    first = client.get("/sessions/", {"tenant": str(tenant.pk), "user_id": "bob\r"})
    older = re.search(r'href="(\?[^"]*)">Older sessions', first.content.decode())
    assert older is not None
    second = client.get(f"/sessions/{html.unescape(older.group(1))}")

    assert {user for user, _ in _listed(first) + _listed(second)} == {"bob\r"}
    assert len(_listed(first) + _listed(second)) == 51
    # A form field cannot carry a line break as it is (browsers send CR and LF as CRLF): no hidden field, so the
    # Filter button drops the filter, and the page says so by no longer showing it, rather than list bob\r\n.
    assert 'name="user_id"' not in first.content.decode()


def test_a_user_filter_that_is_no_user_id_is_named_and_ignored(world: World) -> None:
    create_session(tenant=world.acme.tenant, user_id="ann", session_id="a1")
    client = logged_in(world.support)

    page = client.get("/sessions/", {"user_id": "a\x00b"})
    blank = client.get("/sessions/", {"user_id": "   "})

    assert _listed(page) == [("ann", "a1")]
    assert "were not understood and were ignored" in page.content.decode()
    assert _listed(blank) == [("ann", "a1")]


def test_a_list_of_one_users_sessions_does_not_add_other_peoples_new_sessions_live(world: World) -> None:
    client = logged_in(world.support)

    one_user = client.get("/sessions/", {"tenant": str(world.acme.tenant.pk), "user_id": "ann"})

    assert one_user.context["live"] is False
    assert 'data-live="0"' in one_user.content.decode()
