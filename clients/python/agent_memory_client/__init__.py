"""Python client of the agent memory service."""

from agent_memory_client.client import AsyncMemoryClient, MemoryClient, RetryPolicy
from agent_memory_client.errors import ApiError, NotFoundError

__all__ = ["ApiError", "AsyncMemoryClient", "MemoryClient", "NotFoundError", "RetryPolicy"]
