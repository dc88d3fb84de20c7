"""The hot context in Redis: a cache of the dialogue window and tool states, coherent by event version.

Postgres holds the truth (every message and tool state is an event); Redis holds, per session, the last
CONTEXT_WINDOW_MESSAGES messages and the stream version they reflect (`head`). Rules that keep it coherent
without locks across the two stores:

- A write updates the cache after its transaction commits, and only when the cache already holds exactly
  the versions before its own (`head == first - 1`). An out-of-order or missed update leaves the cache behind.
- A read compares the cache's `head` with the session's `head_version` from Postgres. Equal: serve Redis.
  Behind: fetch the missing events from Postgres and catch the cache up. Missing (expired, evicted, flushed):
  rebuild the window from events and mark it `rebuilt`. So a Redis loss is a cache miss, never data loss.

Tool state keys carry the version that wrote them and a 30-minute TTL; the same TTL bounds what a rebuild
from events may bring back, so a tool state expires at the same moment whichever store answers. They also carry
the session version they are known current at, which a read compares with `head_version` as the window's `head`
is (see `_SET_TOOL`), so a missed update is noticed rather than served for the rest of the TTL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from django.conf import settings

from memory_admin.health import redis_client
from memory_admin.metrics import RECOVERIES
from memory_admin.redis_wire import Batch, Script

logger = structlog.get_logger("memory.context")

# The meta hash keeps the list's length (`len`): Redis may evict one of the two keys without the other (the
# production policy is volatile-lru), and a list that went while its head stayed must read as a miss, never as
# an empty window at the head, nor take appends that would then stand for the whole window.

# KEYS: meta hash, message list. ARGV: first version, last version, window, ttl, replace (0/1), messages…
_APPLY = Script("""
local meta = redis.call('HMGET', KEYS[1], 'head', 'len')
if not meta[1] then return -1 end
if tonumber(meta[2]) ~= redis.call('LLEN', KEYS[2]) then return -1 end
local head = tonumber(meta[1])
if head >= tonumber(ARGV[2]) then return 0 end
if head ~= tonumber(ARGV[1]) - 1 then return -2 end
if ARGV[5] == '1' then redis.call('DEL', KEYS[2]) end
if #ARGV >= 6 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 6))
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
end
redis.call('HSET', KEYS[1], 'head', ARGV[2], 'len', redis.call('LLEN', KEYS[2]))
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
""")

# KEYS: meta hash, message list. ARGV: head version, window, ttl, rebuilt flag, messages…
_INIT = Script("""
local meta = redis.call('HMGET', KEYS[1], 'head', 'len')
if meta[1] and tonumber(meta[1]) >= tonumber(ARGV[1]) and tonumber(meta[2]) == redis.call('LLEN', KEYS[2]) then
  return 0
end
redis.call('DEL', KEYS[2])
if #ARGV >= 5 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 5))
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
end
redis.call('HSET', KEYS[1], 'head', ARGV[1], 'rebuilt', ARGV[4], 'len', redis.call('LLEN', KEYS[2]))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
""")

# A tool key holds `{"at":H,"v":V,"state":…}` (or `{"at":H,"v":V,"cleared":true}`): the state written at version
# V, and the session head H it is known to be the tool's latest at. A read serves it as it is only while the
# session's head is H; past H it looks for a newer write of the tool in Postgres (a missed update), and moves H on
# when there is none.

# KEYS: tool key. ARGV: version, value (JSON text as above), ttl. Only a newer version may overwrite.
_SET_TOOL = Script("""
local current = redis.call('GET', KEYS[1])
if current then
  local stored = cjson.decode(current)
  if tonumber(stored['v']) >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
""")

# KEYS: tool key. ARGV: version, head. The state cached for `version` is still the latest at `head`: move `at` on
# (the value's text is kept as it is, the state untouched, its lifetime too).
_CONFIRM_TOOL = Script("""
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local at, v = string.match(current, '^{"at":(%d+),"v":(%d+),')
if not v or v ~= ARGV[1] or tonumber(at) >= tonumber(ARGV[2]) then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('SET', KEYS[1], '{"at":' .. ARGV[2] .. string.sub(current, #at + 7), 'PX', ttl)
return 1
""")


def _meta_key(session_pk: object) -> str:
    return f"mem:ctx:{session_pk}"


def _list_key(session_pk: object) -> str:
    return f"mem:ctx:{session_pk}:msgs"


def tool_key(session_pk: object, tool: str) -> str:
    return f"mem:tool:{session_pk}:{tool}"


def session_keys_pattern(session_pk: object) -> list[str]:
    """Key patterns that hold this session's hot data (for erasure and inspection)."""
    return [_meta_key(session_pk), _list_key(session_pk), f"mem:tool:{session_pk}:*"]


@dataclass(frozen=True)
class ContextEffect:
    """What a batch of events does to the message window: replace it first, then append these."""

    replace: bool
    messages: list[Any]


@dataclass(frozen=True)
class CachedContext:
    head: int | None  # None: nothing cached
    rebuilt: bool
    # The window's messages as cached: one JSON text each.
    texts: list[bytes]
    ttl_seconds: int

    @property
    def messages(self) -> list[Any]:
        return [json.loads(text) for text in self.texts]


def _encode(messages: list[Any]) -> list[str]:
    return [json.dumps(message, ensure_ascii=False, separators=(",", ":")) for message in messages]


def advance(
    session_pk: object, *, first: int, last: int, effect: ContextEffect, ttl: int, batch: Batch | None = None
) -> None:
    """Advance the cached window by the versions `first..last` (see the module's rules). Never raises.

    With `batch`, the command is queued on it and the caller executes it.
    """
    queued = batch if batch is not None else Batch()
    queued.script(
        _APPLY,
        [_meta_key(session_pk), _list_key(session_pk)],
        [
            first,
            last,
            settings.CONTEXT_WINDOW_MESSAGES,
            ttl,
            "1" if effect.replace else "0",
            *_encode(effect.messages),
        ],
    )
    if batch is None:
        _execute(queued)


def _execute(batch: Batch) -> list[Any] | None:
    try:
        return batch.execute()
    except redis.RedisError as exc:
        logger.warning("context_cache_unavailable", error=type(exc).__name__)
        return None


def read_cached(session_pk: object, *, ttl: int, touch: bool = True) -> CachedContext | None:
    """The cached window; an agent's read is activity and extends the TTL (`touch`), a person's look does not.

    None when Redis is unreachable.
    """
    batch = Batch().hmget(_meta_key(session_pk), "head", "rebuilt", "len").lrange(_list_key(session_pk), 0, -1)
    if touch:
        batch.expire(_meta_key(session_pk), ttl).expire(_list_key(session_pk), ttl)
    else:
        batch.ttl(_meta_key(session_pk))
    replies = _execute(batch)
    if replies is None:
        return None
    (head, rebuilt, length), raw_messages, extended, *_ = replies
    if head is None or length is None or int(length) != len(raw_messages):
        # Missing, or its message list was evicted (or changed) apart from its head: a miss.
        return CachedContext(head=None, rebuilt=False, texts=[], ttl_seconds=0)
    return CachedContext(
        head=int(head),
        rebuilt=rebuilt == b"1",
        texts=raw_messages,
        ttl_seconds=(ttl if extended else 0) if touch else max(int(extended), 0),
    )


def prime(session_pk: object, *, ttl: int) -> None:
    """Start the cache of a new session (empty, at version 0) so that its first appends land in Redis."""
    _store(session_pk, head=0, messages=[], rebuilt=False, ttl=ttl)


def store_rebuilt(session_pk: object, *, head: int, messages: list[Any], ttl: int) -> bool:
    """Cache a window rebuilt from Postgres at version `head`, unless a newer one got there first."""
    RECOVERIES.labels(kind="context_rebuild").inc()
    return _store(session_pk, head=head, messages=messages, rebuilt=True, ttl=ttl)


def _store(session_pk: object, *, head: int, messages: list[Any], rebuilt: bool, ttl: int) -> bool:
    batch = Batch().script(
        _INIT,
        [_meta_key(session_pk), _list_key(session_pk)],
        [
            head,
            settings.CONTEXT_WINDOW_MESSAGES,
            ttl,
            "1" if rebuilt else "0",
            *_encode(messages[-settings.CONTEXT_WINDOW_MESSAGES :]),
        ],
    )
    replies = _execute(batch)
    return bool(replies and replies[0])


# Marks a cleared tool state (kept as a tombstone for its TTL so an older write cannot resurrect it).
_CLEARED = object()


def set_tool_after_commit(
    session_pk: object,
    tool: str,
    *,
    version: int,
    state: Any,
    ttl: int,
    as_of: int,
    batch: Batch | None = None,
) -> None:
    """Cache a tool's state written at `version` (`state` None with `cleared`), its latest as of the session
    version `as_of`; older writes never win."""
    body = {"at": as_of, "v": version, **({"cleared": True} if state is _CLEARED else {"state": state})}
    value = json.dumps(body, separators=(",", ":"))
    queued = batch if batch is not None else Batch()
    queued.script(_SET_TOOL, [tool_key(session_pk, tool)], [version, value, max(1, ttl)])
    if batch is None:
        try:
            queued.execute()
        except redis.RedisError as exc:
            logger.warning("tool_state_cache_unavailable", error=type(exc).__name__)


def clear_tool_after_commit(
    session_pk: object, tool: str, *, version: int, ttl: int, as_of: int, batch: Batch | None = None
) -> None:
    set_tool_after_commit(session_pk, tool, version=version, state=_CLEARED, ttl=ttl, as_of=as_of, batch=batch)


def confirm_tool(session_pk: object, tool: str, *, version: int, as_of: int) -> None:
    """Record that the tool's cached state written at `version` is still its latest at session version `as_of`."""
    try:
        Batch().script(_CONFIRM_TOOL, [tool_key(session_pk, tool)], [version, as_of]).execute()
    except redis.RedisError as exc:
        logger.warning("tool_state_cache_unavailable", error=type(exc).__name__)


@dataclass(frozen=True)
class CachedTool:
    version: int
    # The session version this state is known to be the tool's latest at.
    as_of: int
    cleared: bool
    state: Any
    ttl_seconds: int


def read_tool(session_pk: object, tool: str) -> CachedTool | bool | None:
    """The cached tool state; None on a miss; False when Redis is unreachable."""
    try:
        raw, ttl = Batch().get(tool_key(session_pk, tool)).ttl(tool_key(session_pk, tool)).execute()
    except redis.RedisError as exc:
        logger.warning("tool_state_cache_unavailable", error=type(exc).__name__)
        return False
    if raw is None:
        return None
    stored = json.loads(raw)
    version = int(stored["v"])
    return CachedTool(
        version=version,
        # A write is its tool's latest at its own version, whatever `at` says (nothing, before it was kept).
        as_of=max(int(stored.get("at", 0)), version),
        cleared=bool(stored.get("cleared")),
        state=stored.get("state"),
        ttl_seconds=max(int(ttl), 0),
    )


def purge_session(session_pk: object) -> int:
    """Delete every hot key of a session; returns how many were removed."""
    client = redis_client()
    keys = [_meta_key(session_pk), _list_key(session_pk)]
    keys += [key.decode() for key in client.scan_iter(match=f"mem:tool:{session_pk}:*", count=500)]
    return int(client.delete(*keys)) if keys else 0
