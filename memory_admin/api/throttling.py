"""Per-API-key rate limits, counted in Redis so that every web process shares one budget.

Fixed one-minute windows: one pipelined INCR per request. Over the limit the API answers 429 with
`Retry-After`. Every response carries X-RateLimit-Limit / X-RateLimit-Remaining. When Redis is down the
limit is not enforced: refusing all traffic because a cache is away would be the worse failure.
"""

from __future__ import annotations

import time
from typing import Any

import redis
import structlog
from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from memory_admin.health import redis_client
from tenants_app.authentication import AgentPrincipal

logger = structlog.get_logger("memory.ratelimit")

WINDOW_SECONDS = 60


class ApiKeyRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self.retry_after = 0.0

    def allow_request(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, AgentPrincipal):
            return True
        limit = settings.API_RATE_LIMIT_PER_MINUTE
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"mem:rl:{principal.api_key.pk}:{window}"
        try:
            pipe = redis_client().pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 1)
            count = int(pipe.execute()[0])
        except redis.RedisError as exc:
            logger.warning("ratelimit_unavailable", error=type(exc).__name__)
            return True
        request.rate_limit = (limit, max(0, limit - count))  # type: ignore[attr-defined]
        if count > limit:
            self.retry_after = (window + 1) * WINDOW_SECONDS - now
            return False
        return True

    def wait(self) -> float:
        return max(1.0, self.retry_after)
