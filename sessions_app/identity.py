"""Who a session is, remembered per process, so that an agent's writes skip the session lookup.

A write to a session needs its primary key (Redis keys, live groups) and its person (`user_id`: payloads are
encrypted with that person's key before they are stored). Neither ever changes for a session, so each process
remembers them by (tenant, session id) for the sessions it served lately. Nothing trusts the memory blindly:
every write's own statement checks that the row is still there, the tenant's, visible and writable. When it
is not, the write asks Postgres what became of the id (erased, or erased and created again with a new
primary key) and answers from that, correcting this memory.

What is remembered is stamped with the cache epoch the request read (tenants_app.keycache) and is good only
while the epoch stays: erasing a person replaces it, so no process encrypts a payload for an erased person
from memory (that would make a new data key for them before the statement refused the write). Without Redis
nothing is remembered.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from tenants_app.keycache import current_epoch

MAX_REMEMBERED = 20_000


class SessionIdentity(Protocol):
    """What a write needs to know of a session: a model instance or a `SessionRef`."""

    @property
    def pk(self) -> uuid.UUID: ...

    @property
    def tenant_id(self) -> uuid.UUID: ...

    @property
    def session_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SessionRef:
    pk: uuid.UUID
    tenant_id: uuid.UUID
    session_id: str
    user_id: str
    epoch: bytes | None = None


_remembered: OrderedDict[tuple[uuid.UUID, str], SessionRef] = OrderedDict()
_lock = threading.Lock()


def remembered(tenant_id: uuid.UUID, session_id: str) -> SessionRef | None:
    ref = _remembered.get((tenant_id, session_id))
    if ref is None or ref.epoch is None or ref.epoch != current_epoch():
        return None
    return ref


def remember(session: SessionIdentity) -> SessionIdentity:
    """Remember the session under the current epoch (not at all without one); returns what to write with."""
    epoch = current_epoch()
    if epoch is None:
        return session
    ref = SessionRef(
        pk=session.pk, tenant_id=session.tenant_id, session_id=session.session_id, user_id=session.user_id, epoch=epoch
    )
    with _lock:
        _remembered[(ref.tenant_id, ref.session_id)] = ref
        if len(_remembered) > MAX_REMEMBERED:
            _remembered.popitem(last=False)
    return ref


def forget(tenant_id: uuid.UUID, session_id: str) -> None:
    with _lock:
        _remembered.pop((tenant_id, session_id), None)


def forget_all() -> None:
    with _lock:
        _remembered.clear()
