"""Made-up HTTP methods must not grow /metrics: anyone can send them, with no login."""

from __future__ import annotations

from io import BytesIO

import pytest
from django.test import Client

from memory_admin.api.handler import SplitWSGIHandler
from memory_admin.metrics import exposition


@pytest.mark.django_db
def test_requests_with_made_up_methods_add_no_metric_series_of_their_own() -> None:
    Client(raise_request_exception=False).generic("ZZPAGE1", "/nothing-here")
    # The API's own middleware chain (memory_admin.api.handler) counts its requests too.
    environ = {
        "REQUEST_METHOD": "ZZAPI1",
        "PATH_INFO": "/api/v1/sessions",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "wsgi.input": BytesIO(b""),
        "wsgi.url_scheme": "http",
    }
    statuses: list[str] = []
    b"".join(SplitWSGIHandler()(environ, lambda status, headers, exc_info=None: statuses.append(status)))

    scraped = exposition().decode()
    assert statuses and "ZZ" not in scraped
    assert 'method="<invalid method>"' in scraped
