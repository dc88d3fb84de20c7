"""Verify (and the dashboard's chain status) while an agent keeps saving: the checkpoints, their children and
the session's head are read as of one moment, so a save committing meanwhile is verified with the rest or not
seen at all — never a 500, a false broken link, or a checkpoint reported as removed by retention."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection

from checkpoints_app import services
from checkpoints_app.selectors import chain_status
from conftest import World
from sessions_app.models import AgentSession

from .helpers import acme_session, saved, url

pytestmark = pytest.mark.django_db

_READS_CHECKPOINTS = re.compile(r"\bcheckpoints_app_checkpoint(head)?\b")


@contextmanager
def saving_after_statement(number: int, save: Callable[[], None]) -> Iterator[list[bool]]:
    """Runs `save` right after the `number`th statement that reads checkpoints (or their head) has run: what
    an agent's request committing at that moment does. The list it gives holds True once `save` ran."""
    seen = 0
    ran: list[bool] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal seen
        result = execute(sql, params, many, context)
        if not ran and _READS_CHECKPOINTS.search(sql):
            seen += 1
            if seen == number:
                ran.append(True)
                save()
        return result

    with connection.execute_wrapper(wrapper):
        yield ran


def fork_of(session: AgentSession, parent_id: str) -> Callable[[], None]:
    def save() -> None:
        services.save_checkpoint(
            session=session,
            node_id="forked",
            parent_id=uuid.UUID(parent_id),
            patch=[{"op": "add", "path": "/l/-", "value": 2}],
        )

    return save


@pytest.mark.parametrize("statement", [1, 2])
@pytest.mark.parametrize("kind", ["next", "fork"])
def test_a_save_committing_while_verify_reads_is_verified_with_the_rest_or_not_seen(
    world: World, statement: int, kind: str
) -> None:
    client = world.acme.client
    session = acme_session(world)
    first = saved(client, session, state={"l": [0] * 50})
    second = saved(client, session, parent_id=first["id"], patch=[{"op": "add", "path": "/l/-", "value": 1}])
    # The agent's next step, or a fork from the first checkpoint (time travel), whose parent has a child already.
    save = fork_of(session, second["id"] if kind == "next" else first["id"])

    with saving_after_statement(statement, save) as ran:
        response = client.get(url(session, "/verify"))

    assert response.status_code == 200, response.content
    report = response.json()
    assert (report["valid"], report["first_bad_link"], report["removed_by_retention"]) == (True, None, []), report
    assert report["checked"] in (2, 3)
    again = client.get(url(session, "/verify")).json()
    assert (again["valid"], again["checked"], again["removed_by_retention"]) == (True, 2 + len(ran), [])


def test_the_dashboards_chain_status_during_a_save_is_not_broken(world: World) -> None:
    client = world.acme.client
    session = acme_session(world)
    first = saved(client, session, state={"l": []})

    with saving_after_statement(2, fork_of(session, first["id"])) as ran:
        status = chain_status(session=session)

    assert ran
    assert (status.valid, status.first_bad_link, status.removed_by_retention) == (True, None, [])
    assert chain_status(session=session).checked == 2
