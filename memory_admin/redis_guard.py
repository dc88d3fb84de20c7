"""A circuit breaker in front of Redis, so that a dead or hung Redis costs one fast failure per interval.

Redis is a cache here: every caller already catches `redis.RedisError` and falls back to Postgres (auth,
idempotency, hot context, live updates) or skips the work (rate counting). What made an outage expensive was
the waiting: a refused connection retried with backoff, or a hung server held each request for a socket
timeout. The connection class below (installed on the cache's pool by settings) keeps, per Redis address:

- closed: connect as usual. A connect that fails, or a reply that times out, opens the breaker.
- open for REDIS_BREAKER_SECONDS: no socket is touched; every command fails at once with a ConnectionError
  (which the callers already treat as "Redis is away"). Connections made before the failure are dropped
  before their next command, so a restarted Redis is never talked to through a dead socket.
- when the interval is over, one caller probes with a real connect (the others keep failing fast while it
  does); success closes the breaker, failure opens it for another interval.

The Celery broker is Redis too: `queue_task` sends the tasks whose work is also found later anyway (a
durable row that a beat sweep resumes, a snapshot the next long replay leaves) in one attempt, skipped while
the broker's address is known to be down, instead of kombu's retries (~0.7 s per task with a dead broker).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import redis
import structlog
from django.conf import settings

logger = structlog.get_logger("memory.redis")


class RedisSkipped(ConnectionRefusedError):
    """Raised instead of connecting while the breaker is open (an OSError, so redis-py reports a
    ConnectionError as for any refused connection)."""


@dataclass
class Breaker:
    """The state of one Redis address, shared by every thread of the process."""

    open_until: float = 0.0
    tripped: bool = False
    # Counts the openings: a connection made before the latest one is presumed dead.
    generation: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refuses(self, probe_seconds: float) -> bool:
        """True while open; past the interval, lets exactly one caller through to probe."""
        if not self.tripped:
            return False
        with self.lock:
            now = time.monotonic()
            if now < self.open_until:
                return True
            self.open_until = now + probe_seconds  # the others wait for this probe's answer
            return False

    def blocked(self) -> bool:
        return self.tripped and time.monotonic() < self.open_until

    def trip(self) -> None:
        with self.lock:
            self.tripped = True
            self.generation += 1
            self.open_until = time.monotonic() + float(settings.REDIS_BREAKER_SECONDS)

    def reset(self) -> None:
        if self.tripped:
            with self.lock:
                self.tripped = False
                self.open_until = 0.0


_breakers: dict[tuple[str, int], Breaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(host: str, port: int) -> Breaker:
    key = (host, int(port))
    found = _breakers.get(key)
    if found is None:
        with _breakers_lock:
            found = _breakers.setdefault(key, Breaker())
    return found


class _Guarded:
    """Mixed into a redis-py connection class (see the module docstring)."""

    host: str
    port: int
    socket_connect_timeout: float | None
    _sock: Any
    _born: int = -1
    _answered: bool = False

    @property
    def breaker(self) -> Breaker:
        return breaker_for(self.host, self.port)

    def _connect(self) -> Any:
        breaker = self.breaker
        if breaker.refuses(self.socket_connect_timeout or 1.0):
            raise RedisSkipped(f"Redis at {self.host}:{self.port} failed recently; not retried until the interval ends")
        try:
            sock = super()._connect()  # type: ignore[misc]
        except OSError:  # refused, unreachable, or timed out
            breaker.trip()
            raise
        self._born = breaker.generation
        self._answered = False
        breaker.reset()
        return sock

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        breaker = self.breaker
        if self._sock is not None and (self._born != breaker.generation or breaker.blocked()):
            self.disconnect()  # type: ignore[attr-defined]
        if self._sock is None and breaker.blocked():
            raise redis.ConnectionError(f"Redis at {self.host}:{self.port} is unavailable (breaker open)")
        super().send_packed_command(command, check_health)  # type: ignore[misc]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        except redis.TimeoutError:
            # Connected but not answering (a hung or overloaded server): stop waiting on it for a while.
            self.breaker.trip()
            raise
        except redis.ConnectionError:
            # A socket that answered before and is now closed (Redis restarted, or dropped an idle client) is
            # simply replaced; one that never answered means the server is not working.
            if not self._answered:
                self.breaker.trip()
            raise
        self._answered = True
        return response


class GuardedConnection(_Guarded, redis.Connection):
    pass


class GuardedSSLConnection(_Guarded, redis.SSLConnection):
    pass


def pool_options(url: str) -> dict[str, Any]:
    """CONNECTION_POOL_KWARGS for django-redis: the guarded connection class and a single quick retry.

    redis-py's default retries a failed command ten times with backoff (seconds of sleeping per call while
    Redis is down); one immediate retry is enough to replace a connection that Redis closed.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {"retry": Retry(NoBackoff(), 1)}
    if url.startswith("redis://"):
        options["connection_class"] = GuardedConnection
    elif url.startswith("rediss://"):
        options["connection_class"] = GuardedSSLConnection
    return options


@lru_cache(maxsize=4)
def _broker_client(url: str) -> redis.Redis | None:
    if not url.startswith(("redis://", "rediss://")):
        return None
    pool = redis.ConnectionPool.from_url(
        url,
        socket_connect_timeout=float(settings.REDIS_CONNECT_TIMEOUT_SECONDS),
        socket_timeout=float(settings.REDIS_SOCKET_TIMEOUT_SECONDS),
        max_connections=4,
        **pool_options(url),
    )
    return redis.Redis(connection_pool=pool)


def queue_task(task: Any, *args: Any, **kwargs: Any) -> bool:
    """Queue `task(*args, **kwargs)` at most once, without waiting on a broker that is down; False if it was not
    queued.

    Only for work that is picked up later without this message (see the module docstring), or whose caller
    says it was not queued (a job started by hand from the dashboard). kombu's own
    client retries a refused connection for seconds, so the broker is asked first through a guarded client:
    a PING (tasks queued this way are rare: a snapshot per hundred events, a promotion job), or nothing at all
    while its breaker is open.
    """
    try:
        probe = _broker_client(str(settings.CELERY_BROKER_URL))
        if probe is not None:
            probe.ping()
        task.apply_async(args=args, kwargs=kwargs, retry=False)
    except Exception as exc:  # whatever the broker or kombu raise: the caller's committed work must not fail
        logger.warning("task_not_queued", task=task.name, reason=type(exc).__name__)
        return False
    return True
