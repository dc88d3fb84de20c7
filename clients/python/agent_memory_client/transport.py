"""The sync client's default transport: one keep-alive HTTP/1.1 connection per thread, from the standard library.

A LangGraph checkpointer sends one request per graph step and waits for it, so the client's own per-request
cost is on every step's path. httpx spends ~0.7 ms of CPU on a small request (its URL, header and response
models, httpcore's pool); `http.client` on a kept connection ~0.2 ms, which made a step of the bench's graph
~0.7 ms shorter. An httpx transport given to the client (`transport=`, e.g. httpx.WSGITransport in tests)
is used through httpx instead.

Failures surface as `TransportError` (an httpx.TransportError, so callers catch one kind). When a kept
connection turns out to be closed (the server drops idle ones), the request is sent again at once on a new
one, once; the client's writes are safe to repeat (they carry an Idempotency-Key, or are the checkpointer's
upserts), and the client's own retries with backoff handle everything else.
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx


class TransportError(httpx.TransportError):
    pass


class Reply:
    """What the client reads of a response: status, headers (case-insensitive get) and body."""

    __slots__ = ("_headers", "content", "status_code")

    def __init__(self, status_code: int, headers: list[tuple[str, str]], content: bytes) -> None:
        self.status_code = status_code
        self._headers = {name.lower(): value for name, value in headers}
        self.content = content

    @property
    def headers(self) -> dict[str, str]:
        return _CaseInsensitive(self._headers)

    def json(self) -> Any:
        return json.loads(self.content)


class _CaseInsensitive(dict[str, str]):
    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class KeepAliveTransport:
    """Requests to one origin, each thread on its own kept-alive connection."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def request(
        self, method: str, path: str, *, content: bytes | None, params: dict[str, str] | None, headers: dict[str, str]
    ) -> Reply:
        """`path` is relative to the base URL (e.g. /api/v1/sessions)."""
        target = self._prefix + path + ("?" + urlencode(params) if params else "")
        for attempt in (0, 1):
            connection = self._connection()
            reused = connection.sock is not None
            try:
                connection.request(method, target, body=content, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except _STALE as exc:
                connection.close()
                if reused and attempt == 0:
                    continue  # closed while idle: nothing was sent; once more on a new connection
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                connection.close()
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
            if response.will_close:
                connection.close()
            return Reply(response.status, response.getheaders(), body)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()
