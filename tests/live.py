"""Reading live-update messages in tests: what a Redis pub/sub subscription received, decoded."""

from __future__ import annotations

import json
import time
from typing import Any


def drain(pubsub: Any, wanted: int, timeout: float = 5) -> list[dict[str, Any]]:
    """Up to `wanted` messages, waiting at most `timeout` seconds for them."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(messages) < wanted and time.monotonic() < deadline:
        item = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if item:
            messages.append(json.loads(item["data"]))
    return messages
