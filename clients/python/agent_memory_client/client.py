"""A typed REST client of the agent memory service, sync (`MemoryClient`) and async (`AsyncMemoryClient`).

Every write carries an Idempotency-Key, generated once per call and reused by its retries, so a retry after
a timeout or a dropped connection returns the first answer instead of writing twice (a POST that only reads,
such as a store batch of gets and searches, is sent without one: `keyed=False`). Retries (with
exponential backoff and Retry-After, in seconds or as an HTTP-date) happen on connection errors, timeouts,
429 and 502/503/504. A 409 saying the request's key is still in flight (an earlier attempt, timed out here, is
still running there) is retried with the same key, at the pace of its Retry-After, for up to
`RetryPolicy.in_flight_wait` seconds (30 by default) whatever the attempts left, so that a slow write returns
its own answer instead of an error after which repeating the call would write twice.

A request is retried after a failure that may have reached the service (a dropped connection or a timeout
after it was sent, a gateway's 502/504) only when a repeat is harmless: an idempotent method (GET, PUT,
DELETE...), an Idempotency-Key, `keyed=False`, or `safe=True` (the upserts of the checkpointer). A POST sent
without a key (`idempotency_keys=False`) is otherwise retried only when it cannot have arrived (the
connection was never opened, or the service answered 429/503). When a retried DELETE is answered 404, the
attempt whose answer was lost deleted it: that is success.

Redirects are not followed: a 3xx is an ApiError (a base_url that points at the wrong place). base_url is
the service's address, http:// or https:// with a host, without /api/v1 (the client adds it): anything else
is a ValueError when the client is made.

Bodies are JSON: a value JSON has no type for (bytes, a datetime, a UUID, a Decimal, a set, a pydantic model)
is a TypeError before anything is sent, as LangGraph's PostgresStore and PostgresSaver refuse it (a tuple is
a list, as JSON writes it).

Both clients talk to base_url directly: neither reads a proxy from the environment (HTTP_PROXY, HTTPS_PROXY,
ALL_PROXY, NO_PROXY), so the sync and async clients of one process always take the same route. Both verify
TLS against the system's CA store, which SSL_CERT_FILE or SSL_CERT_DIR replace. To go through a proxy, give
the clients httpx transports that do (`transport=`; a saver or store takes `transport=` for its sync client
and `async_transport=` for its async one, see `clients_for`).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import re
import ssl
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from agent_memory_client.errors import ApiError, NotFoundError
from agent_memory_client.transport import IDEMPOTENT, KeepAliveTransport, Reply

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Answers after which the request may have been carried out (a gateway lost the service's answer).
MAYBE_DONE_STATUSES = frozenset({502, 504})
# Failures before anything was sent.
UNSENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The most ids one prune or delete-for-runs request may carry (the service refuses more).
MAX_IDS = 1000
# What a request body may be at most by default: below the service's 1 MiB (API_MAX_BODY_BYTES), with room
# for what a size estimate leaves out.
MAX_REQUEST_BYTES = 768 * 1024
# Session and thread ids, as the service holds them.
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff: float = 0.1
    max_backoff: float = 2.0
    # How long a request the service says is still in flight under its key is retried (the attempts aside).
    in_flight_wait: float = 30.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before the next attempt: what Retry-After asks (seconds or an HTTP-date, at most five
        times max_backoff), or exponential backoff with jitter when it is absent or not a valid value."""
        asked = _retry_after(retry_after) if retry_after else None
        if asked is not None:
            return min(asked, 5.0 * self.max_backoff)
        return min(self.max_backoff, self.backoff * 2.0**attempt) * (0.5 + random.random() / 2)  # noqa: S311


def _retry_after(value: str) -> float | None:
    """Retry-After as seconds from now (RFC 9110 10.2.3: delay-seconds or an HTTP-date); None when invalid."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def encode_body(body: Any) -> bytes:
    """The body as JSON; TypeError for a value JSON has no type for, as PostgresStore and PostgresSaver raise (it
    was stored as its str(), which reads back as a different value), and ValueError for NaN or an infinity,
    which JSON cannot write either (the service would refuse the whole request)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def checked_base_url(base_url: str) -> str:
    """base_url without its trailing "/"; ValueError unless it is an http:// or https:// URL with a host, or when
    it ends in /api/v1. Without a scheme, "127.0.0.1:8000" reads as a path, and the API key would go to
    localhost:80; with /api/v1 every call is "No such endpoint.", which reads would take for a missing thread."""
    url = base_url.rstrip("/")
    parts = urlsplit(url)
    try:
        _ = parts.port  # ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        valid = False
    else:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    if not valid:
        raise ValueError(
            f"base_url must be an http:// or https:// URL with a host (http://127.0.0.1:8000), not {base_url!r}"
        )
    if parts.path.endswith("/api/v1"):
        raise ValueError(f"base_url is the service's address, without /api/v1 (the client adds it): {base_url!r}")
    return url


def _decode(response: httpx.Response | Reply) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _error(response: httpx.Response | Reply) -> ApiError:
    if 300 <= response.status_code < 400:
        location = response.headers.get("Location") or "elsewhere"
        return ApiError(
            response.status_code,
            "redirect",
            f"The service answered with a redirect to {location}; the client does not follow redirects "
            "(is base_url the service's address?).",
        )
    error = ApiError.from_response(response.status_code, _decode(response))
    if response.status_code == 404:
        return NotFoundError(error.status, error.code, error.message, error.details, error.request_id)
    return error


def _should_retry(response: httpx.Response | Reply, repeatable: bool) -> bool:
    if response.status_code in MAYBE_DONE_STATUSES:
        return repeatable
    return response.status_code in RETRY_STATUSES


def _in_flight(response: httpx.Response | Reply) -> bool:
    """A 409 saying a request with this Idempotency-Key is still being processed."""
    if response.status_code != 409:
        return False
    body = _decode(response)
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return bool(isinstance(details, dict) and details.get("in_flight"))


@dataclass
class _Tries:
    """One call's attempts so far."""

    attempt: int = 0
    reached: bool = False  # an earlier attempt may have been carried out
    in_flight_until: float | None = None  # the service said the key is in flight: retried until then
    in_flight: int = 0  # answers saying so


class _Base:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        idempotency_keys: bool = True,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.base_url = checked_base_url(base_url)
        self.api_key = api_key
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.idempotency_keys = idempotency_keys
        # The size a batching caller (the checkpointer's group commit) keeps each request's body under.
        self.max_request_bytes = max_request_bytes

    def _headers(self, method: str, keyed: bool) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}
        if keyed and self.idempotency_keys and method in ("POST", "PUT", "PATCH"):
            headers["Idempotency-Key"] = uuid.uuid4().hex
        return headers

    def _url(self, path: str) -> str:
        return f"{self.base_url}/api/v1/{path.lstrip('/')}"

    def _settle(
        self, method: str, response: httpx.Response | Reply, tries: _Tries, *, repeatable: bool
    ) -> tuple[bool, Any]:
        """(True, the decoded body) for a final answer; (False, seconds to wait) to try again, `tries` counted;
        or the ApiError."""
        status = response.status_code
        if 200 <= status < 300:
            return True, _decode(response)
        if status == 404 and method == "DELETE" and (tries.reached or getattr(response, "resent", False)):
            return True, None  # the attempt whose answer was lost deleted it
        retry_after = response.headers.get("Retry-After")
        if _in_flight(response):
            # An earlier attempt with this key still runs: its answer is the call's, so wait for it (a new key
            # would write twice), however many attempts the timeouts before used.
            now = time.monotonic()
            if tries.in_flight_until is None:
                tries.in_flight_until = now + self.retry.in_flight_wait
            if now >= tries.in_flight_until:
                raise _error(response)
            tries.in_flight += 1
            return False, min(self.retry.delay(tries.in_flight - 1, retry_after), tries.in_flight_until - now)
        if tries.attempt >= self.retry.attempts - 1 or not _should_retry(response, repeatable):
            raise _error(response)
        tries.reached = tries.reached or status in MAYBE_DONE_STATUSES
        tries.attempt += 1
        return False, self.retry.delay(tries.attempt - 1, retry_after)

    def _after_transport_error(self, exc: httpx.TransportError, tries: _Tries, *, repeatable: bool) -> float:
        """Seconds to wait before trying again after `exc`, `tries` counted; raises it when that is not to be."""
        unsent = isinstance(exc, UNSENT_ERRORS)
        if tries.attempt >= self.retry.attempts - 1 or not (unsent or repeatable):
            raise exc
        tries.reached = tries.reached or not unsent
        tries.attempt += 1
        return self.retry.delay(tries.attempt - 1, None)

    def _repeatable(self, method: str, headers: dict[str, str], keyed: bool, safe: bool) -> bool:
        return safe or not keyed or method in IDEMPOTENT or "Idempotency-Key" in headers


class MemoryClient(_Base):
    """Synchronous client, thread-safe (share one per process): a kept-alive connection per thread from the
    standard library (agent_memory_client.transport), or httpx when given an httpx transport (`transport=`)."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        transport = options.pop("transport", None)
        super().__init__(base_url, api_key, **options)
        self._http: httpx.Client | None = None
        self._kept: KeepAliveTransport | None = None
        if transport is not None:
            self._http = httpx.Client(timeout=self.timeout, transport=transport, trust_env=False)
        else:
            self._kept = KeepAliveTransport(self.base_url, timeout=self.timeout)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._kept is not None:
            self._kept.close()

    def _send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: dict[str, str] | None,
        headers: dict[str, str],
        repeatable: bool,
    ) -> Any:
        if self._kept is not None:
            path = f"/api/v1/{path.lstrip('/')}"
            return self._kept.request(
                method, path, content=content, params=params, headers=headers, repeatable=repeatable
            )
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
        safe: bool = False,
    ) -> Any:
        """Send one request (retried as the module says); the decoded JSON body, or ApiError. `keyed=False`
        sends a write without an Idempotency-Key: for a POST that only reads, or writes what a repeat leaves as
        is (so it is retried like a read). `safe=True`: a repeat leaves what it writes as is (an upsert), so it
        is retried even when the client sends no keys."""
        headers = self._headers(method, keyed)
        content = encode_body(body) if body is not None else None
        query = dict(params) if params else None
        repeatable = self._repeatable(method, headers, keyed, safe)
        tries = _Tries()
        while True:
            try:
                response = self._send(method, path, content, query, headers, repeatable)
            except httpx.TransportError as exc:
                time.sleep(self._after_transport_error(exc, tries, repeatable=repeatable))
                continue
            done, value = self._settle(method, response, tries, repeatable=repeatable)
            if done:
                return value
            time.sleep(value)

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
        return _object(self.request("GET", f"sessions/{_id(session_id)}"))

    def create_memory(self, **fields: Any) -> dict[str, Any]:
        return _object(self.request("POST", "memories", body=fields))

    def search_memories(self, **query: Any) -> dict[str, Any]:
        return _object(self.request("POST", "memories/search", body=query, safe=True))

    def get_memory(self, memory_id: str) -> dict[str, Any]:
        return _object(self.request("GET", f"memories/{_segment(memory_id)}"))

    def delete_memory(self, memory_id: str) -> None:
        self.request("DELETE", f"memories/{_segment(memory_id)}")

    def put_checkpoint(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(self.request("POST", _thread(thread_id, "checkpoints"), body=body, safe=True))

    def list_checkpoints(self, thread_id: str, **params: Any) -> dict[str, Any]:
        return _object(self.request("GET", _thread(thread_id, "checkpoints"), params=_params(params)))

    def save_batch(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Several checkpoints and task writes of one thread, stored in order in one transaction."""
        return _object(self.request("POST", _thread(thread_id, "saves"), body=body, safe=True))

    def list_all_checkpoints(self, **params: Any) -> dict[str, Any]:
        """Checkpoints of every thread of the key's tenant (before, filter, limit, after)."""
        return _object(self.request("GET", "langgraph/checkpoints", params=_params(params)))

    def put_writes(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(self.request("POST", _thread(thread_id, "writes"), body=body, safe=True))

    def delete_thread(self, thread_id: str) -> None:
        self.request("DELETE", _thread(thread_id))

    def copy_thread(self, thread_id: str, target_thread_id: str) -> dict[str, Any]:
        body = {"target_thread_id": target_thread_id}
        return _object(self.request("POST", _thread(thread_id, "copy"), body=body))

    def prune_threads(self, thread_ids: Sequence[str], strategy: str) -> None:
        """In requests of up to MAX_IDS threads each (each request is atomic, the whole call is not)."""
        for chunk in _chunks(thread_ids, MAX_IDS):
            self.request("POST", "langgraph/prune", body={"thread_ids": chunk, "strategy": strategy}, safe=True)

    def delete_for_runs(self, run_ids: Sequence[str]) -> dict[str, Any]:
        """In requests of up to MAX_IDS runs each; the count is the requests' total."""
        count = 0
        for chunk in _chunks(run_ids, MAX_IDS):
            answer = _object(self.request("POST", "langgraph/delete-for-runs", body={"run_ids": chunk}, safe=True))
            count += int(answer.get("count") or 0)
        return {"count": count}


class AsyncMemoryClient(_Base):
    """Asynchronous client (httpx.AsyncClient); the same calls as MemoryClient, awaited."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        self._transport = options.pop("transport", None)
        super().__init__(base_url, api_key, **options)
        # A connection pool belongs to the event loop that opened it: one httpx client per loop, by id(loop).
        self._clients: dict[int, _LoopClient] = {}

    async def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        held = self._clients.get(id(loop))
        if held is not None and held.loop is loop:
            return held.http
        for key, other in list(self._clients.items()):  # loops closed without closing their async generators
            if other.loop.is_closed():
                del self._clients[key]
        # As the sync client's own transport: no proxy from the environment, and TLS verified against the
        # system's CA store (which SSL_CERT_FILE / SSL_CERT_DIR replace, as OpenSSL reads them).
        http = httpx.AsyncClient(
            timeout=self.timeout, transport=self._transport, trust_env=False, verify=ssl.create_default_context()
        )
        # Closed with its loop: asyncio.run (and other runners) close a loop's open async generators before the
        # loop, so this one's `finally` closes the client's connections while their loop still runs.
        closer = _close_with_loop(weakref.ref(self), id(loop), http)
        self._clients[id(loop)] = _LoopClient(loop, http, closer)
        await closer.__anext__()
        return http

    async def aclose(self) -> None:
        """Close the connections of every loop the client was used on that still runs; those of a loop that is
        closed were closed with it (or cannot be any more)."""
        clients, self._clients = self._clients, {}
        running = asyncio.get_running_loop()
        for held in clients.values():
            if held.loop is running:
                await held.closer.aclose()
            elif held.loop.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(held.closer.aclose(), held.loop))

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
        safe: bool = False,
    ) -> Any:
        """As MemoryClient.request."""
        headers = self._headers(method, keyed)
        content = encode_body(body) if body is not None else None
        url = self._url(path)
        http = await self._client()
        repeatable = self._repeatable(method, headers, keyed, safe)
        tries = _Tries()
        while True:
            try:
                response = await http.request(method, url, content=content, params=params, headers=headers)
            except httpx.TransportError as exc:
                await asyncio.sleep(self._after_transport_error(exc, tries, repeatable=repeatable))
                continue
            done, value = self._settle(method, response, tries, repeatable=repeatable)
            if done:
                return value
            await asyncio.sleep(value)

    async def whoami(self) -> dict[str, Any]:
        return _object(await self.request("GET", "whoami"))

    async def create_session(
        self, *, user_id: str, session_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": user_id, "metadata": metadata or {}}
        if session_id is not None:
            body["id"] = session_id
        return _object(await self.request("POST", "sessions", body=body))

    async def get_session(self, session_id: str) -> dict[str, Any]:
        return _object(await self.request("GET", f"sessions/{_id(session_id)}"))

    async def create_memory(self, **fields: Any) -> dict[str, Any]:
        return _object(await self.request("POST", "memories", body=fields))

    async def search_memories(self, **query: Any) -> dict[str, Any]:
        return _object(await self.request("POST", "memories/search", body=query, safe=True))

    async def get_memory(self, memory_id: str) -> dict[str, Any]:
        return _object(await self.request("GET", f"memories/{_segment(memory_id)}"))

    async def delete_memory(self, memory_id: str) -> None:
        await self.request("DELETE", f"memories/{_segment(memory_id)}")

    async def put_checkpoint(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(await self.request("POST", _thread(thread_id, "checkpoints"), body=body, safe=True))

    async def list_checkpoints(self, thread_id: str, **params: Any) -> dict[str, Any]:
        return _object(await self.request("GET", _thread(thread_id, "checkpoints"), params=_params(params)))

    async def save_batch(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(await self.request("POST", _thread(thread_id, "saves"), body=body, safe=True))

    async def list_all_checkpoints(self, **params: Any) -> dict[str, Any]:
        return _object(await self.request("GET", "langgraph/checkpoints", params=_params(params)))

    async def put_writes(self, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(await self.request("POST", _thread(thread_id, "writes"), body=body, safe=True))

    async def delete_thread(self, thread_id: str) -> None:
        await self.request("DELETE", _thread(thread_id))

    async def copy_thread(self, thread_id: str, target_thread_id: str) -> dict[str, Any]:
        body = {"target_thread_id": target_thread_id}
        return _object(await self.request("POST", _thread(thread_id, "copy"), body=body))

    async def prune_threads(self, thread_ids: Sequence[str], strategy: str) -> None:
        for chunk in _chunks(thread_ids, MAX_IDS):
            body = {"thread_ids": chunk, "strategy": strategy}
            await self.request("POST", "langgraph/prune", body=body, safe=True)

    async def delete_for_runs(self, run_ids: Sequence[str]) -> dict[str, Any]:
        count = 0
        for chunk in _chunks(run_ids, MAX_IDS):
            body = {"run_ids": chunk}
            count += int(
                _object(await self.request("POST", "langgraph/delete-for-runs", body=body, safe=True)).get("count") or 0
            )
        return {"count": count}


def clients_for(
    owner: str,
    base_url: str | None,
    api_key: str | None,
    client: MemoryClient | None,
    async_client: AsyncMemoryClient | None,
    options: dict[str, Any],
) -> tuple[MemoryClient, AsyncMemoryClient]:
    """The sync and async clients of a saver or store (`owner` names it): those given, or new ones of base_url,
    api_key and the client options. `transport=` (an httpx transport) serves the sync client, `async_transport=`
    (an httpx async transport) the async one; given one without the other, the other client's calls raise
    ValueError rather than reach the service another way (around a proxy, past a test's in-process app)."""
    if (client is None or async_client is None) and (base_url is None or api_key is None):
        raise ValueError("Pass base_url and api_key, or both clients.")
    transport = options.pop("transport", None)
    async_transport = options.pop("async_transport", None)
    if transport is None and async_transport is not None:
        transport = _Unserved(f"{owner} was given async_transport= only: pass transport= for its sync calls too.")
    if async_transport is None and transport is not None:
        async_transport = _Unserved(
            f"{owner} was given transport= only: pass async_transport= for its async calls too."
        )
    return (
        client or MemoryClient(base_url or "", api_key or "", transport=transport, **options),
        async_client or AsyncMemoryClient(base_url or "", api_key or "", transport=async_transport, **options),
    )


class _Unserved(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The transport of the client a saver or store was given no transport for, while given one for the other."""

    def __init__(self, message: str) -> None:
        self.message = message

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise ValueError(self.message)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise ValueError(self.message)


@dataclass
class _LoopClient:
    loop: asyncio.AbstractEventLoop
    http: httpx.AsyncClient
    closer: AsyncGenerator[None, None]


async def _close_with_loop(
    owner: weakref.ref[AsyncMemoryClient], key: int, http: httpx.AsyncClient
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        client = owner()
        if client is not None and (held := client._clients.get(key)) is not None and held.http is http:
            del client._clients[key]
        await http.aclose()


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(0, "unexpected_body", "The service answered with something other than a JSON object.")
    return value


def _segment(value: str) -> str:
    """A value as one path segment: "/", "?", "#", "%" and non-ASCII characters percent-encoded."""
    return quote(str(value), safe="")


def _id(session_id: str) -> str:
    """A session's (a thread's) id as a path segment; ValueError for one the service cannot hold, before any
    request (the service would not route it, or would take part of it for the path)."""
    text = str(session_id)
    if not SESSION_ID.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a valid thread or session id: 1-128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit."
        )
    return _segment(text)


def _thread(thread_id: str, then: str = "") -> str:
    return f"langgraph/threads/{_id(thread_id)}" + (f"/{then}" if then else "")


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most `size` (one empty slice for no items: the request still goes)."""
    listed = list(items)
    for start in range(0, max(len(listed), 1), size):
        yield listed[start : start + size]


def _params(params: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        out[name] = json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)
    return out
