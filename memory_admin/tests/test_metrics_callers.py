"""Who may scrape /metrics without a login: loopback callers, however the server hands their address over."""

from __future__ import annotations

import pytest
from django.test import override_settings

from memory_admin.metrics import scrape_allowed


@pytest.mark.parametrize(
    ("remote_addr", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # an IPv4 caller of a dual-stack listener (HOST=::)
        ("::ffff:10.1.2.3", False),
        ("10.1.2.3", False),
        ("", False),
    ],
)
@override_settings(METRICS_TOKEN="")
def test_only_loopback_callers_are_scraped_without_the_token(remote_addr: str, allowed: bool) -> None:
    assert scrape_allowed("", remote_addr) is allowed
