"""What a process remembers about sessions is good only under the key-cache epoch its request read."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from memory_admin.health import redis_client
from sessions_app import identity
from sessions_app.identity import SessionRef
from tenants_app import keycache

T = TypeVar("T")

SESSION = SessionRef(pk=uuid.uuid4(), tenant_id=uuid.uuid4(), session_id="remembered", user_id="someone")


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    redis_client().delete(keycache.EPOCH_KEY)
    identity.forget_all()
    yield
    identity.forget_all()


def _in_another_request(work: Callable[[], T]) -> T:
    """Run `work` on another thread, as another request of the same worker process would be."""
    results: list[T] = []

    def request() -> None:
        keycache.check("another-request-digest")
        results.append(work())

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    return results[0]


def test_a_session_remembered_under_the_current_epoch_is_recalled() -> None:
    keycache.check("this-request-digest")
    identity.remember(SESSION)

    recalled = identity.remembered(SESSION.tenant_id, SESSION.session_id)
    assert recalled is not None and (recalled.pk, recalled.user_id) == (SESSION.pk, SESSION.user_id)
    assert _in_another_request(lambda: identity.remembered(SESSION.tenant_id, SESSION.session_id)) is not None


def test_a_session_remembered_before_the_epoch_changed_is_looked_up_again() -> None:
    keycache.check("this-request-digest")
    identity.remember(SESSION)

    redis_client().set(keycache.EPOCH_KEY, "replaced-by-an-erasure")

    assert _in_another_request(lambda: identity.remembered(SESSION.tenant_id, SESSION.session_id)) is None


def test_a_request_remembers_under_the_epoch_it_read_not_one_another_thread_read_since() -> None:
    """The request looked the session up before an erasure replaced the epoch; another thread's request
    has read the new epoch meanwhile. What the first request remembers must not pass for current."""
    keycache.check("this-request-digest")
    redis_client().set(keycache.EPOCH_KEY, "replaced-by-an-erasure")
    _in_another_request(lambda: None)

    identity.remember(SESSION)

    assert _in_another_request(lambda: identity.remembered(SESSION.tenant_id, SESSION.session_id)) is None


def test_without_redis_nothing_is_remembered() -> None:
    keycache._set_epoch(None)

    identity.remember(SESSION)

    assert identity.remembered(SESSION.tenant_id, SESSION.session_id) is None
