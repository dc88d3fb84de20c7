"""Per-API-key rate limits, counted in Redis so that every web process shares one budget.

Fixed one-minute windows. The count is taken by the authentication step, in the same Redis round trip as
its own check (see tenants_app.keycache), and judged here. Over the limit the API answers 429 with
`Retry-After`; every response carries X-RateLimit-Limit / X-RateLimit-Remaining. When Redis is down the
limit is not enforced: refusing all traffic because a cache is away would be the worse failure.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

WINDOW_SECONDS = 60


def count_request(pipe: Any, subject: str) -> None:
    """Queue the INCR (and its expiry) of `subject`'s counter for the current window on a pipeline."""
    key = f"mem:rl:{subject}:{int(time.time() // WINDOW_SECONDS)}"
    pipe.incr(key)
    pipe.expire(key, WINDOW_SECONDS + 1)


class ApiKeyRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self.retry_after = 0.0

    def allow_request(self, request: Request, view: Any) -> bool:
        count: int | None = getattr(request._request, "rate_count", None)
        if count is None:
            return True
        limit = settings.API_RATE_LIMIT_PER_MINUTE
        request.rate_limit = (limit, max(0, limit - count))  # type: ignore[attr-defined]
        if count > limit:
            now = time.time()
            self.retry_after = (int(now // WINDOW_SECONDS) + 1) * WINDOW_SECONDS - now
            return False
        return True

    def wait(self) -> float:
        return max(1.0, self.retry_after)
