"""A per-process memo of rebuilt checkpoint states, keyed by exactly which stored rows they were rebuilt from.

Rebuilding a state (decrypting, decompressing and patching along the path from the nearest full snapshot)
and verifying every link on the way is a pure function of the path's stored rows. A verified state is
remembered with the versions of those rows (`chain.ROW_VERSION_SQL`: each row's and its parent row's tuple
place and writing transaction). A read gets the row versions from the database with the target row (no
payloads); when they match the remembered ones, the very same rows were verified before and the state is
known without fetching or rebuilding anything. Any change made through SQL (an UPDATE, or a DELETE and an
INSERT again) writes a new row version, so a row tampered with that way is never answered from memory: the
path is rebuilt and verified, and the broken link named, as without this memo. (An edit beneath SQL, to the
data files themselves, keeps the version; it is caught by the next rebuild, by verify, or after MAX_AGE_SECONDS.)

Nothing depends on a hit: another process, a restart, a vacuum that moves rows or an eviction only means a
rebuild. Entries are immutable by convention (a save patches a remembered state with
`patching.apply_copying`, which copies only what changes), bounded by CHECKPOINT_STATE_CACHE_BYTES per process
(0 turns the memo off) and forgotten after MAX_AGE_SECONDS: an erased person's session is invisible at once
(no read gets this far), and their states do not linger in a worker's memory for longer than that.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings

MAX_AGE_SECONDS = 600.0
# What a cached state costs in memory, per byte of its canonical JSON (Python objects are larger).
_OBJECT_OVERHEAD = 4


@dataclass(frozen=True)
class Remembered:
    """A checkpoint's verified state, and what it was verified from."""

    # Whose it is: a lookup by a checkpoint id a client sent must also match the caller's session.
    session_id: Any
    state: dict[str, Any]
    state_json: bytes
    # The versions of the path's rows (separated by ';', the full snapshot first) as they were verified.
    row_versions: str
    sequence: int
    checksum: str
    at: float = 0.0

    @property
    def depth(self) -> int:
        return self.row_versions.count(";")


class StateMemo:
    """At most one remembered state per checkpoint id, least recently used evicted first."""

    def __init__(self) -> None:
        self._entries: OrderedDict[Any, Remembered] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, session_id: Any, checkpoint_id: Any, row_versions: str | None = None) -> Remembered | None:
        """The session's checkpoint's remembered state if it was verified from exactly `row_versions` (when
        given: a caller that has not read the rows must check them against the database itself)."""
        with self._lock:
            found = self._entries.get(checkpoint_id)
            if found is None or found.session_id != session_id:
                return None
            if time.monotonic() - found.at > MAX_AGE_SECONDS:
                self._drop(checkpoint_id)
                return None
            if row_versions is not None and found.row_versions != row_versions:
                return None
            self._entries.move_to_end(checkpoint_id)
            return found

    def put(
        self,
        session_id: Any,
        checkpoint_id: Any,
        *,
        state: dict[str, Any],
        state_json: bytes,
        row_versions: str,
        sequence: int,
        checksum: str,
    ) -> None:
        limit: int = settings.CHECKPOINT_STATE_CACHE_BYTES
        cost = len(state_json) * _OBJECT_OVERHEAD
        if cost > limit // 4:
            return
        remembered = Remembered(
            session_id=session_id,
            state=state,
            state_json=state_json,
            row_versions=row_versions,
            sequence=sequence,
            checksum=checksum,
            at=time.monotonic(),
        )
        with self._lock:
            self._drop(checkpoint_id)
            self._entries[checkpoint_id] = remembered
            self._bytes += cost
            while self._bytes > limit and self._entries:
                self._drop(next(iter(self._entries)))

    def _drop(self, checkpoint_id: Any) -> None:
        dropped = self._entries.pop(checkpoint_id, None)
        if dropped is not None:
            self._bytes -= len(dropped.state_json) * _OBJECT_OVERHEAD

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


states = StateMemo()
