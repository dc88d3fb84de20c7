"""Running the dashboard's WebSocket consumer in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.db import connections

T = TypeVar("T")


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async scenario on its own loop in its own thread (a browser test may own this thread's loop).

    The consumer's database calls run in asgiref's one thread for thread-sensitive code, whose connection
    would otherwise stay open after the test and keep the test database from being dropped at the end.
    """

    async def then_close_connections() -> T:
        try:
            return await scenario()
        finally:
            await database_sync_to_async(connections.close_all)()

    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, then_close_connections()).result()
