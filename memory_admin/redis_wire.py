"""Redis commands of the hot paths, sent in one round trip without redis-py's pipeline machinery.

An agent request talks to Redis twice (the key check with its rate count, then the cache and live updates
after its write). Through a redis-py pipeline each round trip cost ~90 µs of CPU, most of it in the pool,
the retry wrapper and per-command bookkeeping; `Batch` packs the commands with hiredis and sends them on a
connection this thread keeps for itself (~25 µs). The connection is the cache's own kind
(`memory_admin.redis_guard.GuardedConnection`, same address, timeouts and circuit breaker), so a dead or
hung Redis costs these calls exactly what it costs the rest of the code.

Failures are redis-py's exceptions (`redis.RedisError` and its subclasses), which every caller already
treats as "Redis is away". A batch is sent at most once: a connection that Redis closed while it was idle
(a restart, an idle timeout) is noticed before anything is written and replaced; once bytes may have
reached Redis, a failure is reported, never retried (a retry could count a request twice, or find its own
idempotency claim and answer "in flight").
"""

from __future__ import annotations

import hashlib
import os
import select
import socket
import threading
from typing import Any

import hiredis
import redis
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.exceptions import NoScriptError, ResponseError

from memory_admin.health import redis_client


class Script:
    """A Lua script sent by its SHA-1; loaded again (EVAL) when the server does not know it (after a restart)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class _ThreadConnection(threading.local):
    connection: Any = None
    # The cache's pool the connection was made like (settings can change it: tests point it elsewhere).
    pool: Any = None
    pid: int = 0


_local = _ThreadConnection()
# The cache's connection pool (shared by all threads: django-redis keeps one per URL), looked up once.
_pool: Any = None


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    global _pool
    if setting == "CACHES":
        _pool = None


def _connection() -> Any:
    global _pool
    pool = _pool
    if pool is None:
        pool = _pool = redis_client().connection_pool
    if _local.connection is None or _local.pool is not pool or _local.pid != os.getpid():
        forget_connection()
        _local.connection = pool.connection_class(**pool.connection_kwargs)
        _local.pool, _local.pid = pool, os.getpid()
    return _local.connection


def forget_connection() -> None:
    """Drop this thread's connection (tests that restart Redis; a worker after fork gets a new one anyway)."""
    if _local.connection is not None and _local.pid == os.getpid():
        _local.connection.disconnect()
    _local.connection = _local.pool = None


class Batch:
    """Commands queued in order and sent together; `execute()` returns one reply per command.

    Method names follow redis-py's, so a batch reads like the pipeline it replaces.
    """

    __slots__ = ("_commands", "_scripts")

    def __init__(self) -> None:
        self._commands: list[tuple[Any, ...]] = []
        # Index of each EVALSHA in _commands, with its script (for the NOSCRIPT fallback).
        self._scripts: dict[int, tuple[Script, tuple[Any, ...]]] = {}

    def __len__(self) -> int:
        return len(self._commands)

    def command(self, *args: Any) -> Batch:
        self._commands.append(args)
        return self

    def get(self, key: str) -> Batch:
        return self.command("GET", key)

    def set(self, key: str, value: Any, *, ex: int | None = None, nx: bool = False) -> Batch:
        args: tuple[Any, ...] = ("SET", key, value)
        if ex is not None:
            args += ("EX", ex)
        if nx:
            args += ("NX",)
        return self.command(*args)

    def delete(self, *keys: str) -> Batch:
        return self.command("DEL", *keys)

    def incr(self, key: str) -> Batch:
        return self.command("INCR", key)

    def expire(self, key: str, seconds: int) -> Batch:
        return self.command("EXPIRE", key, seconds)

    def ttl(self, key: str) -> Batch:
        return self.command("TTL", key)

    def hmget(self, key: str, *fields: str) -> Batch:
        return self.command("HMGET", key, *fields)

    def lrange(self, key: str, start: int, stop: int) -> Batch:
        return self.command("LRANGE", key, start, stop)

    def publish(self, channel: str, message: str | bytes) -> Batch:
        return self.command("PUBLISH", channel, message)

    def script(self, script: Script, keys: list[str], args: list[Any]) -> Batch:
        call = (len(keys), *keys, *args)
        self._scripts[len(self._commands)] = (script, call)
        return self.command("EVALSHA", script.sha, *call)

    def execute(self) -> list[Any]:
        if not self._commands:
            return []
        packed = b"".join([hiredis.pack_command(command) for command in self._commands])
        connection = _connection()
        try:
            replies = _exchange(connection, packed, len(self._commands))
        except redis.RedisError:
            connection.disconnect()
            raise
        except BaseException:
            # Interrupted halfway (a signal, a timeout in the caller): the socket's state is unknown.
            connection.disconnect()
            raise
        for index, (script, call) in self._scripts.items():
            if isinstance(replies[index], NoScriptError):
                replies[index] = _exchange(connection, hiredis.pack_command(("EVAL", script.source, *call)), 1)[0]
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies


def _exchange(connection: Any, packed: bytes, count: int) -> list[Any]:
    """Send `packed` and read `count` replies (an error reply is returned in its place, as an exception)."""
    if connection._sock is not None and not _still_open(connection._sock):
        connection.disconnect()  # closed by Redis while idle: replaced before anything is sent
    connection.send_packed_command([packed], check_health=False)
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(connection.read_response())
        except ResponseError as error:
            replies.append(error)
    return replies


def _still_open(sock: socket.socket) -> bool:
    """False when the peer closed the socket, or left bytes on it that nobody asked for (they would be taken
    for the replies to the next commands). An idle, healthy socket has nothing to read."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable
