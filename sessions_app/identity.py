"""Who a session is, remembered per process, so that an agent's writes skip the session lookup.

A write to a session needs its primary key (Redis keys, live groups) and its person (`user_id`: payloads are
encrypted with that person's key before they are stored). Neither ever changes for a session, so each process
remembers them by (tenant, session id) for the sessions it served lately. Nothing trusts the memory blindly:
every write's own statement checks that the row is still there, the tenant's, visible and writable. When it
is not, the write asks Postgres what became of the id (erased, or erased and created again with a new
primary key) and answers from that, correcting this memory.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

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


_remembered: OrderedDict[tuple[uuid.UUID, str], SessionRef] = OrderedDict()
_lock = threading.Lock()


def remembered(tenant_id: uuid.UUID, session_id: str) -> SessionRef | None:
    return _remembered.get((tenant_id, session_id))


def remember(session: SessionIdentity) -> SessionRef:
    ref = SessionRef(pk=session.pk, tenant_id=session.tenant_id, session_id=session.session_id, user_id=session.user_id)
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
