"""Every dashboard URL refuses people without its role with the 403 page, for reads and for actions alike.

The suite walks the dashboard's URL patterns, so a page added later is covered (and one added without
`staff_page` fails here)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, reverse

from conftest import World, logged_in
from memory_admin.dashboard.urls import urlpatterns
from tenants_app.roles import Role

pytestmark = pytest.mark.django_db

EXAMPLE_VALUES: dict[str, Any] = {"UUIDConverter": uuid.uuid4(), "IntConverter": 1, "UserIdConverter": "alice"}


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    role: Role | None


def _example(pattern: URLPattern) -> Page:
    converters = pattern.pattern.converters
    kwargs = {name: EXAMPLE_VALUES.get(type(converter).__name__, "purge") for name, converter in converters.items()}
    return Page(
        name=str(pattern.name),
        path=reverse(f"dashboard:{pattern.name}", kwargs=kwargs),
        role=getattr(pattern.callback, "staff_role", None),
    )


PAGES = [_example(pattern) for pattern in urlpatterns if isinstance(pattern, URLPattern)]


def _assert_refused(response: Any, who: str, method: str, page: Page) -> None:
    assert response.status_code == 403, f"{who} {method} {page.path}: {response.status_code}"
    assert response["Content-Type"].startswith("text/html")
    assert b"<h1>Not allowed</h1>" in response.content


def _lacking(world: World, role: Role | None) -> dict[str, User]:
    staff = {"support": world.support, "compliance": world.compliance, "admin": world.admin}
    lacking = {name: user for name, user in staff.items() if role is not None and name != role.value}
    return {"nobody": world.nobody, **lacking}


def test_every_dashboard_url_is_a_staff_page() -> None:
    unguarded = [pattern.name for pattern in urlpatterns if not hasattr(pattern.callback, "staff_role")]
    assert unguarded == []
    # The suite means something only if it walks the role-restricted pages too.
    assert {page.role for page in PAGES} == {None, Role.COMPLIANCE, Role.ADMIN}


def test_people_without_the_role_get_the_403_page_for_reads_and_actions(world: World) -> None:
    clients = {who: logged_in(user) for who, user in _lacking(world, None).items()}
    clients |= {role.value: logged_in(getattr(world, role.value)) for role in Role}
    for page in PAGES:
        for who in _lacking(world, page.role):
            client = clients[who]
            _assert_refused(client.post(page.path, {"confirm": "yes"}), who, "POST", page)
            response = client.get(page.path)
            if response.status_code == 405:
                # An action URL answers GET with 405 to everyone; the role check is the POST above.
                continue
            _assert_refused(response, who, "GET", page)


def test_anonymous_visitors_are_sent_to_log_in() -> None:
    for page in PAGES:
        response = Client().post(page.path)
        assert response.status_code == 302, page.path
        assert response["Location"].startswith("/login/?next="), page.path
