"""The dashboard's WebSocket address when `make run` listens on every interface: the browser opens it on the host
it reached the page by (static/js/live.js), whatever name or address that was."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Page, WebSocket, expect

from conftest import World
from memory_admin.embedded import free_port
from memory_admin.runner import websocket_url
from tests.servers import running, uvicorn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_page_reached_by_another_name_opens_its_socket_on_that_name(page: Page, world: World) -> None:
    # uvicorn serves the pages and the socket on one port, told what `HOST=0.0.0.0 make run` tells the pages.
    port = free_port()
    env = {"WEBSOCKET_URL": websocket_url("0.0.0.0", "127.0.0.1", port)}  # noqa: S104
    client = Client()
    client.force_login(world.support)
    opened: list[str] = []

    def record(socket: WebSocket) -> None:
        opened.append(socket.url)

    page.on("websocket", record)
    with running(uvicorn(port, env=env)):
        # By "localhost", not the 127.0.0.1 the server would have named (another machine uses its address).
        base = f"http://localhost:{port}"
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": base}])
        page.goto(f"{base}/sessions/")
        expect(page.locator("#live-status")).to_have_attribute("data-status", "live")

    assert opened == [f"ws://localhost:{port}/ws/live/"]
