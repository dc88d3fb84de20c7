"""A write that reaches the session row while an erasure approval holds it answers 404 once the approval commits,
as if it had come a moment later: never a 500 because the row it read at first is gone by the time it is locked."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection

from conftest import World
from sessions_app.models import AgentSession
from sessions_app.tests.helpers import create_session
from tests.clients import AgentClient
from tests.concurrency import second_connection, wait_until_blocked

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def erasure_approving(session_id: str) -> Iterator[None]:
    """The first statement of compliance_app.services.approve_erasure on the session, its transaction open until
    the block ends (then committed)."""
    pk = AgentSession.objects.get(session_id=session_id).pk
    with second_connection() as approval:
        approval.execute(
            f"UPDATE {AgentSession._meta.db_table} SET erased_at = now() WHERE id = %s AND erased_at IS NULL",  # noqa: S608
            [pk],
        )
        yield
        approval.commit()


def _sent_during_the_approval(world: World, send: Callable[[AgentClient], Any]) -> Any:
    answers: list[Any] = []

    def request() -> None:
        client = AgentClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.acme.raw_key}")
        try:
            answers.append(send(client))
        except Exception as exc:  # the test client raises what the view let through (a 500): the test shows it
            answers.append(exc)
        finally:
            connection.close()

    with erasure_approving("s"):
        thread = threading.Thread(target=request)
        thread.start()
        wait_until_blocked(what="the request")  # for the row: a wait on the approval's transaction
    thread.join(timeout=60)
    return answers[0]


@pytest.mark.parametrize(
    "body", [{"metadata": {"x": 1}}, {"status": "paused"}], ids=["metadata merge", "status change"]
)
def test_a_session_update_waiting_for_an_erasure_approval_is_a_404_once_it_commits(
    world: World, body: dict[str, Any]
) -> None:
    create_session(world.acme.client, "s", "alice")

    response = _sent_during_the_approval(world, lambda client: client.patch("/api/v1/sessions/s", body, format="json"))

    assert not isinstance(response, Exception), repr(response)
    assert response.status_code == 404, response.content
    assert response.json()["error"]["message"] == "No such session."
    assert world.acme.client.get("/api/v1/sessions/s").status_code == 404
