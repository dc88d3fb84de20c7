"""Start a browser logged in as a staff user, without the login form (which test_login_and_overview tests)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import BrowserContext, Page


def log_in(page: Page | BrowserContext, url: str, user: User) -> None:
    """Give the page's browser context the session cookie of `user` for the server at `url`."""
    client = Client()
    client.force_login(user)
    context = page.context if isinstance(page, Page) else page
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": url}])
