"""Logging in to the dashboard, the overview page, and refusals for people without a staff role."""

from __future__ import annotations

import pytest
from django.test import Client

from conftest import STAFF_PASSWORD, World, logged_in

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_the_login_page() -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/")


def test_a_staff_member_logs_in_with_a_password_and_lands_on_the_overview(world: World) -> None:
    client = Client()
    response = client.post("/login/", {"username": "sam-support", "password": STAFF_PASSWORD}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"
    assert b"<h1>Overview</h1>" in response.content


def test_a_wrong_password_shows_an_error_and_does_not_log_in(world: World) -> None:
    client = Client()
    response = client.post("/login/", {"username": "sam-support", "password": "wrong"})
    assert response.status_code == 200
    assert b"did not match" in response.content
    assert client.get("/").status_code == 302


def test_the_overview_shows_the_health_of_each_layer(world: World) -> None:
    response = logged_in(world.support).get("/")
    assert response.status_code == 200
    layers = {layer.name: layer for layer in response.context["layers"]}
    assert set(layers) == {"postgres", "pgvector", "redis", "workers"}
    assert layers["postgres"].ok and layers["pgvector"].ok and layers["redis"].ok
    assert response.context["counts"]["tenants"] == 2


def test_a_user_without_a_staff_role_gets_the_403_page(world: World) -> None:
    response = logged_in(world.nobody).get("/")
    assert response.status_code == 403
    assert b"Not allowed" in response.content


def test_every_role_may_open_the_overview(world: World) -> None:
    for user in (world.support, world.compliance, world.admin):
        assert logged_in(user).get("/").status_code == 200


def test_logging_out_ends_the_session(world: World) -> None:
    client = logged_in(world.support)
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_unknown_pages_get_the_html_404_page(world: World) -> None:
    response = logged_in(world.support).get("/no/such/page/")
    assert response.status_code == 404
    assert b"Not found" in response.content


@pytest.mark.parametrize("next_page", ["/login/", "/login/?next=/login/", "%2Flogin%2F"])
def test_a_logged_in_member_sent_back_to_the_login_page_lands_on_the_overview(world: World, next_page: str) -> None:
    response = logged_in(world.support).get(f"/login/?next={next_page}")

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_logging_in_with_the_login_page_as_next_lands_on_the_overview(world: World) -> None:
    response = Client().post(
        "/login/?next=/login/", {"username": "sam-support", "password": STAFF_PASSWORD, "next": "/login/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
