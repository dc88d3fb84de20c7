"""A typed REST client of the agent memory service, sync (`MemoryClient`) and async (`AsyncMemoryClient`).

Every write carries an Idempotency-Key, generated once per call and reused by its retries, so a retry after
a timeout or a dropped connection returns the first answer instead of writing twice (a POST that only reads,
such as a store batch of gets and searches, is sent without one: `keyed=False`). Retries (with
exponential backoff and Retry-After) happen on connection errors, timeouts, 429, 502/503/504, and 409 for a
request with the same key still in flight. Reads and deletes are retried the same way (they are safe).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from agent_memory_client.errors import ApiError, NotFoundError
from agent_memory_client.transport import KeepAliveTransport, Reply

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff: float = 0.1
    max_backoff: float = 2.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), 5.0 * self.max_backoff)
            except ValueError:
                pass
        return min(self.max_backoff, self.backoff * 2.0**attempt) * (0.5 + random.random() / 2)  # noqa: S311


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def encode_body(body: Any) -> bytes:
    return json.dumps(body, default=_json_default, separators=(",", ":"), ensure_ascii=False).encode()


def _decode(response: httpx.Response | Reply) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _error(response: httpx.Response | Reply) -> ApiError:
    error = ApiError.from_response(response.status_code, _decode(response))
    if response.status_code == 404:
        return NotFoundError(error.status, error.code, error.message, error.details, error.request_id)
    return error


def _should_retry(response: httpx.Response | Reply) -> bool:
    if response.status_code in RETRY_STATUSES:
        return True
    if response.status_code == 409:
        body = _decode(response)
        details = body.get("error", {}).get("details", {}) if isinstance(body, dict) else {}
        return bool(isinstance(details, dict) and details.get("in_flight"))
    return False


class _Base:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        idempotency_keys: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.idempotency_keys = idempotency_keys

    def _headers(self, method: str, keyed: bool) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}
        if keyed and self.idempotency_keys and method in ("POST", "PUT", "PATCH"):
            headers["Idempotency-Key"] = uuid.uuid4().hex
        return headers

    def _url(self, path: str) -> str:
        return f"{self.base_url}/api/v1/{path.lstrip('/')}"


class MemoryClient(_Base):
    """Synchronous client, thread-safe (share one per process): a kept-alive connection per thread from the
    standard library (agent_memory_client.transport), or httpx when given an httpx transport (`transport=`)."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        transport = options.pop("transport", None)
        super().__init__(base_url, api_key, **options)
        self._http: httpx.Client | None = None
        self._kept: KeepAliveTransport | None = None
        if transport is not None:
            self._http = httpx.Client(timeout=self.timeout, transport=transport)
        else:
            self._kept = KeepAliveTransport(self.base_url, timeout=self.timeout)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._kept is not None:
            self._kept.close()

    def _send(
        self, method: str, path: str, content: bytes | None, params: dict[str, str] | None, headers: dict[str, str]
    ) -> Any:
        if self._kept is not None:
            path = f"/api/v1/{path.lstrip('/')}"
            return self._kept.request(method, path, content=content, params=params, headers=headers)
        assert self._http is not None
        return self._http.request(method, self._url(path), content=content, params=params, headers=headers)

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        keyed: bool = True,
    ) -> Any:
        """Send one request (retried as the module says); the decoded JSON body, or ApiError. `keyed=False`
        sends a write without an Idempotency-Key: for a POST that only reads, or writes what a repeat leaves as is."""
        headers = self._headers(method, keyed)
        content = encode_body(body) if body is not None else None
        query = dict(params) if params else None
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                response = self._send(method, path, content, query, headers)
            except httpx.TransportError:
                if last:
                    raise
                time.sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code < 400:
                return _decode(response)
            if last or not _should_retry(response):
                raise _error(response)
            time.sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
        raise AssertionError("unreachable")

    # --- typed calls ------------------------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        return _object(self.request("GET", "whoami"))

    def create_session(
        self, *, user_id: str, session_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": user_id, "metadata": metadata or {}}
        if session_id is not None:
            body["id"] = session_id
        return _object(self.request("POST", "sessions", body=body))

    def get_session(self, session_id: str) -> dict[str, Any]:
        return _object(self.request("GET", f"sessions/{session_id}"))

    def create_memory(self, **fields: Any) -> dict[str, Any]:
        return _object(self.request("POST", "memories", body=fields))

    def search_memories(self, **query: Any) -> dict[str, Any]:
        return _object(self.request("POST", "memories/search", body=query))

    def get_memory(self, memory_id: str) -> dict[str, Any]:
        return _object(self.request("GET", f"memories/{memory_id}"))

    def delete_memory(self, memory_id: str) -> None:
        self.request("DELETE", f"memories/{memory_id}")

    def put_checkpoint(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(self.request("POST", f"langgraph/threads/{thread_id}/checkpoints", body=body))

    def list_checkpoints(self, thread_id: str, **params: Any) -> dict[str, Any]:
        return _object(self.request("GET", f"langgraph/threads/{thread_id}/checkpoints", params=_params(params)))

    def save_batch(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Several checkpoints and task writes of one thread, stored in order in one transaction."""
        return _object(self.request("POST", f"langgraph/threads/{thread_id}/saves", body=body))

    def list_all_checkpoints(self, **params: Any) -> dict[str, Any]:
        """Checkpoints of every thread of the key's tenant (before, filter, limit, after)."""
        return _object(self.request("GET", "langgraph/checkpoints", params=_params(params)))

    def put_writes(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(self.request("POST", f"langgraph/threads/{thread_id}/writes", body=body))

    def delete_thread(self, thread_id: str) -> None:
        self.request("DELETE", f"langgraph/threads/{thread_id}")

    def copy_thread(self, thread_id: str, target_thread_id: str) -> dict[str, Any]:
        return _object(
            self.request("POST", f"langgraph/threads/{thread_id}/copy", body={"target_thread_id": target_thread_id})
        )

    def prune_threads(self, thread_ids: list[str], strategy: str) -> None:
        self.request("POST", "langgraph/prune", body={"thread_ids": thread_ids, "strategy": strategy})

    def delete_for_runs(self, run_ids: list[str]) -> dict[str, Any]:
        return _object(self.request("POST", "langgraph/delete-for-runs", body={"run_ids": run_ids}))


class AsyncMemoryClient(_Base):
    """Asynchronous client (httpx.AsyncClient); the same calls as MemoryClient, awaited."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        self._transport = options.pop("transport", None)
        super().__init__(base_url, api_key, **options)
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> httpx.AsyncClient:
        # A connection pool belongs to the event loop that opened it; a new loop gets a new pool.
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(timeout=self.timeout, transport=self._transport)
            self._loop = loop
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> AsyncMemoryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        keyed: bool = True,
    ) -> Any:
        headers = self._headers(method, keyed)
        content = encode_body(body) if body is not None else None
        url = self._url(path)
        http = self._client()
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                response = await http.request(method, url, content=content, params=params, headers=headers)
            except httpx.TransportError:
                if last:
                    raise
                await asyncio.sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code < 400:
                return _decode(response)
            if last or not _should_retry(response):
                raise _error(response)
            await asyncio.sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
        raise AssertionError("unreachable")

    async def whoami(self) -> dict[str, Any]:
        return _object(await self.request("GET", "whoami"))

    async def create_memory(self, **fields: Any) -> dict[str, Any]:
        return _object(await self.request("POST", "memories", body=fields))

    async def search_memories(self, **query: Any) -> dict[str, Any]:
        return _object(await self.request("POST", "memories/search", body=query))

    async def put_checkpoint(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(await self.request("POST", f"langgraph/threads/{thread_id}/checkpoints", body=body))

    async def list_checkpoints(self, thread_id: str, **params: Any) -> dict[str, Any]:
        return _object(await self.request("GET", f"langgraph/threads/{thread_id}/checkpoints", params=_params(params)))

    async def save_batch(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(await self.request("POST", f"langgraph/threads/{thread_id}/saves", body=body))

    async def list_all_checkpoints(self, **params: Any) -> dict[str, Any]:
        return _object(await self.request("GET", "langgraph/checkpoints", params=_params(params)))

    async def put_writes(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(await self.request("POST", f"langgraph/threads/{thread_id}/writes", body=body))

    async def delete_thread(self, thread_id: str) -> None:
        await self.request("DELETE", f"langgraph/threads/{thread_id}")

    async def copy_thread(self, thread_id: str, target_thread_id: str) -> dict[str, Any]:
        body = {"target_thread_id": target_thread_id}
        return _object(await self.request("POST", f"langgraph/threads/{thread_id}/copy", body=body))

    async def prune_threads(self, thread_ids: list[str], strategy: str) -> None:
        await self.request("POST", "langgraph/prune", body={"thread_ids": thread_ids, "strategy": strategy})

    async def delete_for_runs(self, run_ids: list[str]) -> dict[str, Any]:
        return _object(await self.request("POST", "langgraph/delete-for-runs", body={"run_ids": run_ids}))


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(0, "unexpected_body", "The service answered with something other than a JSON object.")
    return value


def _params(params: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        out[name] = json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)
    return out
