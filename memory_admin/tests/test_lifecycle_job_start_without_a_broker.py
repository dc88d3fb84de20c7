"""A lifecycle job started by hand from the dashboard while the task broker cannot be reached: the page says
the job was not queued, instead of a 500."""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings

from conftest import World, logged_in
from lifecycle_app.models import Job
from tests.servers import running, web_server

pytestmark = pytest.mark.django_db(transaction=True)

CSRF = "k" * 32  # a CSRF secret: the cookie and the header carry the same one


def test_a_job_started_while_the_broker_is_down_is_said_not_to_be_queued(world: World) -> None:
    session = logged_in(world.admin).cookies[settings.SESSION_COOKIE_NAME].value
    cookies = {settings.SESSION_COOKIE_NAME: session, settings.CSRF_COOKIE_NAME: CSRF}
    with (
        running(web_server(workers=1, threads=2, env={"CELERY_BROKER_URL": "redis://127.0.0.1:1/0"})) as server,
        httpx.Client(base_url=server.url, cookies=cookies, headers={"X-CSRFToken": CSRF}, timeout=30) as page,
    ):
        started = page.post(f"/lifecycle/jobs/{Job.MEMORY_PURGE}/", data={"dry_run": "1"})
        shown = page.get("/lifecycle/")

    assert started.status_code == 302, started.text[:500]
    assert "the task broker cannot be reached" in shown.text
