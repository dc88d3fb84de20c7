"""A profile change that races an erasure approval (which deletes the person's profile) on another database
connection: the change creates the profile afresh instead of failing with a 500.

The race is made deterministic with row locks: this test's connection locks the profile row, the PATCH
(on its own thread and connection) finds the row there and skips its insert, then waits to lock it; the test
deletes the row and commits while the PATCH waits, exactly as an approval committing between the two steps.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction

from conftest import World
from memories_app.models import UserProfile
from tests.clients import AgentClient

pytestmark = pytest.mark.django_db(transaction=True)


def _patch(world: World, body: dict[str, Any]) -> Any:
    client = AgentClient()  # one per thread: test clients are not meant to be shared
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.acme.raw_key}")
    return client.patch("/api/v1/users/alice/profile", body, format="json")


def _wait_until_another_connection_waits_for_our_locks(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            # pg_locks is read afresh by every statement, even inside this transaction.
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the PATCH never waited for the profile row")


def _patch_while_the_profile_is_deleted(world: World, body: dict[str, Any]) -> Any:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(_patch(world, body))
        except BaseException as exc:  # the test client re-raises a view's exception: it is the outcome
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    with transaction.atomic():
        UserProfile.objects.select_for_update().get(tenant=world.acme.tenant, user_id="alice")
        thread.start()
        _wait_until_another_connection_waits_for_our_locks()
        # What approve_erasure does to the profile, committed while the PATCH waits.
        UserProfile.objects.filter(tenant=world.acme.tenant, user_id="alice").delete()
    thread.join(timeout=30)
    assert outcome, "the PATCH did not finish"
    return outcome[0]


def test_a_profile_patch_racing_the_deletion_of_the_profile_creates_it_again_instead_of_a_500(world: World) -> None:
    first = _patch(world, {"preferences": {"theme": "dark"}, "facts": {"city": "Alice lives in Porto."}})
    assert first.status_code == 200, first.json()

    response = _patch_while_the_profile_is_deleted(world, {"preferences": {"lang": "nb"}})

    assert not isinstance(response, BaseException), repr(response)
    assert response.status_code == 200, response.json()
    body = response.json()
    # A new profile: nothing of the erased one comes back.
    assert body["version"] == 1 and body["preferences"] == {"lang": "nb"} and body["facts"] == {}
    stored = UserProfile.objects.get(tenant=world.acme.tenant, user_id="alice")
    assert (stored.version, stored.preferences) == (1, {"lang": "nb"})
