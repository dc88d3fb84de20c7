"""The sync client's default transport: one keep-alive HTTP/1.1 connection per thread, from the standard library.

A LangGraph checkpointer sends one request per graph step and waits for it, so the client's own per-request
cost is on every step's path. httpx spends ~0.7 ms of CPU on a small request (its URL, header and response
models, httpcore's pool); `http.client` on a kept connection ~0.2 ms, which made a step of the bench's graph
~0.7 ms shorter. Of what remained, `http.client` spent the larger part parsing the response's headers with
the `email` package's parser, so a request is now written and its response read here (`_Connection`): one
send, the status line and headers read as lines, the body by Content-Length or chunked. An httpx transport
given to the client (`transport=`, e.g. httpx.WSGITransport in tests) is used through httpx instead.

Failures surface as `TransportError` (an httpx.TransportError, so callers catch one kind); a connection that
could not be opened, so nothing was sent, as `ConnectError` (also an httpx.ConnectError); a timeout as
`ConnectTimeout`, `WriteTimeout` or `ReadTimeout` (also httpx's of those names). A header that is not ASCII
is a UnicodeEncodeError before anything is sent, as httpx has it.

A kept connection the server closed while it was idle (or wrote to unasked, e.g. a 408) is noticed before the
request is sent and replaced. A server may answer before it has read the whole request and close the
connection (the service's 413 for a body over its limit): when writing fails so, the answer is read all the
same, as httpx reads it. When a reused connection fails after the request went out, the server may have
received it: it is sent again at once on a new connection, once, only when a repeat is harmless (an
idempotent method, an Idempotency-Key, or the caller says so: `repeatable=True`); otherwise the error is
raised. Should that new connection not open, the error is a plain TransportError, not a ConnectError: the
first send may have arrived.

A connection belongs to the thread that opened it (a thread-local) and is closed when that thread ends; the
transport tracks its connections weakly, for `close()`. A forked child never uses a connection its parent
opened (it would read the parent's answers): the fork hook gives every transport fresh connections there.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import socket
import ssl
import threading
import weakref
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx


class TransportError(httpx.TransportError):
    pass


class ConnectError(TransportError, httpx.ConnectError):
    """The connection could not be opened: the request was not sent."""


class ConnectTimeout(ConnectError, httpx.ConnectTimeout):
    """The connection was not open within the timeout: the request was not sent."""


class WriteTimeout(TransportError, httpx.WriteTimeout):
    """The request could not be written within the timeout."""


class ReadTimeout(TransportError, httpx.ReadTimeout):
    """The request went out, and its answer did not come within the timeout."""


class Reply:
    """What the client reads of a response: status, headers (case-insensitive get) and body."""

    __slots__ = ("_headers", "content", "resent", "status_code")

    def __init__(self, status_code: int, headers: list[tuple[str, str]], content: bytes, resent: bool = False) -> None:
        self.status_code = status_code
        self._headers = {name.lower(): value for name, value in headers}
        self.content = content
        self.resent = resent  # the request went out twice: the first may have reached the server

    @property
    def headers(self) -> dict[str, str]:
        return _CaseInsensitive(self._headers)

    def json(self) -> Any:
        return json.loads(self.content)


class _CaseInsensitive(dict[str, str]):
    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_MAX_LINE = 65536
# What may not appear in a request target (as http.client refuses): a space or control character would let a
# thread id end the request line, or start a header of its own.
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_MAX_HEADERS = 100
# A status line: the version, exactly three digits (100-599), then a reason phrase or nothing.
_STATUS_LINE = re.compile(r"(HTTP/1\.[0-9]) ([1-5][0-9]{2})(?: [^\r\n]*)?\r?\n?")
_DIGITS = re.compile(r"[0-9]+")
# Methods a repeat leaves as they were (RFC 9110 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class _Connection:
    """One kept-alive HTTP/1.1 connection to the service: a request goes out in one send, its response is read
    from a buffered reader (status line, headers, then the body by Content-Length, chunked, or to the close)."""

    def __init__(self, host: str, port: int, *, https: bool, timeout: float) -> None:
        self._address = (host, port)
        literal = f"[{host}]" if ":" in host else host  # an IPv6 address
        self._host_header = literal if port == (443 if https else 80) else f"{literal}:{port}"
        self._https = https
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._reader: Any = None

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def _open(self) -> None:
        try:
            sock = socket.create_connection(self._address, timeout=self._timeout)
        except OSError as exc:
            raise _connect_error(exc) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._address[0])
        except OSError as exc:
            sock.close()
            raise _connect_error(exc) from exc
        self._sock, self._reader = sock, sock.makefile("rb")

    def close(self) -> None:
        reader, sock, self._reader, self._sock = self._reader, self._sock, None, None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()

    __del__ = close  # its thread ended (the thread-local let it go), or its transport was dropped

    def _idle_closed(self) -> bool:
        """Whether the kept socket has something to read before a request is sent: the server closed it while
        idle (end of file), or wrote to it unasked. Either way it cannot carry the next request."""
        assert self._sock is not None
        if _poll is None:
            return bool(select.select([self._sock], [], [], 0)[0])
        poller = _poll()
        poller.register(self._sock, select.POLLIN)
        return bool(poller.poll(0))

    def exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request and read its response: (status, headers, body). Closes the connection when the
        server says it will, or when anything goes wrong (the caller sees the exception)."""
        if _UNSAFE_TARGET.search(target):
            raise http.client.InvalidURL(f"a URL may not contain spaces or control characters: {target!r}")
        if any("\r" in text or "\n" in text for header in headers.items() for text in header):
            raise ValueError("a header name or value may not contain a line break")
        _check_ascii(headers)
        if self._sock is not None and self._idle_closed():
            self.close()
        if self._sock is None:
            self._open()
        assert self._sock is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        sent = False
        cut: OSError | None = None  # the server closed the connection before taking the whole request
        try:
            try:
                self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
            except (BrokenPipeError, ConnectionResetError) as exc:
                cut = exc
            sent = True
            try:
                status, version, response_headers = self._head()
            except (OSError, http.client.HTTPException):
                if cut is not None:
                    raise cut from None
                raise
            body_read, keep = self._body(method, status, version, response_headers)
        except TimeoutError as exc:  # as httpx says it: a timeout while writing, or while waiting for the answer
            self.close()
            raise (ReadTimeout if sent else WriteTimeout)(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            self.close()
            raise
        if not keep or cut is not None:
            self.close()
        return status, response_headers, body_read

    def _line(self) -> bytes:
        line: bytes = self._reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("response line")
        return line

    def _head(self) -> tuple[int, str, list[tuple[str, str]]]:
        while True:
            line = self._line()
            if not line:
                raise http.client.RemoteDisconnected("the server closed the connection without a response")
            matched = _STATUS_LINE.fullmatch(line.decode("latin-1"))
            if matched is None:
                raise http.client.BadStatusLine(line.decode("latin-1", "replace").strip())
            version, code = matched.groups()
            headers: list[tuple[str, str]] = []
            while (line := self._line()) not in (b"\r\n", b"\n", b""):
                if len(headers) >= _MAX_HEADERS:
                    raise http.client.HTTPException(f"more than {_MAX_HEADERS} response headers")
                name, _, value = line.decode("latin-1").partition(":")
                headers.append((name.strip(), value.strip()))
            status = int(code)
            if not 100 <= status < 200:  # an informational answer comes before the real one
                return status, version, headers

    def _body(self, method: str, status: int, version: str, headers: list[tuple[str, str]]) -> tuple[bytes, bool]:
        """The body, and whether the connection stays open for the next request."""
        fields = {name.lower(): value for name, value in headers}
        connection = fields.get("connection", "").lower()
        keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        if method == "HEAD" or status in (204, 304):
            return b"", keep
        if "chunked" in fields.get("transfer-encoding", "").lower():
            return self._chunked(), keep
        lengths = {
            part.strip() for name, value in headers if name.lower() == "content-length" for part in value.split(",")
        }
        if lengths:
            # Two lengths that disagree (or one that is not a number) leave the end of the body unknown: reading
            # either would let the rest be taken for the next answer.
            if len(lengths) > 1 or not all(_DIGITS.fullmatch(length) for length in lengths):
                raise http.client.HTTPException(f"invalid or conflicting Content-Length: {sorted(lengths)}")
            length = int(lengths.pop())
            data: bytes = self._reader.read(length)
            if len(data) != length:
                raise http.client.IncompleteRead(data, length - len(data))
            return data, keep
        return self._reader.read(), False  # delimited by the server closing the connection

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self._line().split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while self._line() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(parts)
            chunk: bytes = self._reader.read(size)
            if len(chunk) != size:
                raise http.client.IncompleteRead(chunk, size - len(chunk))
            parts.append(chunk)
            self._line()  # the CRLF after the chunk


class KeepAliveTransport:
    """Requests to one origin, each thread on its own kept-alive connection."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._lock = threading.Lock()
        self._reset()
        _TRANSPORTS.add(self)

    def _reset(self) -> None:
        # Only the thread-local holds a connection: when its thread ends, the connection is collected and its
        # socket closed. `_all` sees them weakly, for close().
        self._local = threading.local()
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()

    def _connection(self) -> _Connection:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = _Connection(self._host, self._port, https=self._https, timeout=self._timeout)
            self._local.connection = connection
            with self._lock:
                self._all.add(connection)
        return connection

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None,
        params: dict[str, str] | None,
        headers: dict[str, str],
        repeatable: bool = False,
    ) -> Reply:
        """`path` is relative to the base URL (e.g. /api/v1/sessions). `repeatable`: sending the request twice
        does no harm, so it may go again after a reused connection failed with it (as an idempotent method or
        a request with an Idempotency-Key may)."""
        target = self._prefix + path + ("?" + urlencode(params) if params else "")
        for attempt in (0, 1):
            connection = self._connection()
            reused = connection.is_open
            try:
                status, response_headers, body = connection.exchange(method, target, headers, content)
            except _STALE as exc:
                if reused and attempt == 0 and _repeatable(method, headers, repeatable):
                    continue  # the kept connection failed under it: once more on a new connection
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
            except ConnectError as exc:
                if attempt == 1:  # the first send may have reached the server: the request is not "unsent"
                    raise TransportError(f"{exc} (resending a request that may have reached the server)") from exc
                raise
            except (TransportError, UnicodeEncodeError):
                raise
            except (TimeoutError, OSError, ValueError, http.client.HTTPException) as exc:
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc
            return Reply(status, response_headers, body, resent=attempt == 1)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            connections = list(self._all)
        for connection in connections:
            connection.close()

    def _after_fork_in_child(self) -> None:
        # The inherited sockets are the parent's connections: let them go without a word on them (closing this
        # process's copy of a descriptor sends nothing; a shutdown would end the parent's connection too).
        self._lock = threading.Lock()
        self._reset()


def _connect_error(exc: OSError) -> ConnectError:
    return (ConnectTimeout if isinstance(exc, TimeoutError) else ConnectError)(f"{type(exc).__name__}: {exc}")


def _check_ascii(headers: dict[str, str]) -> None:
    """UnicodeEncodeError (a ValueError) for a header that is not ASCII, as httpx raises it: before anything is
    sent, and not a failure a retry could mend."""
    for name, value in headers.items():
        for text in (name, value):
            if not text.isascii():
                start = next(index for index, char in enumerate(text) if not char.isascii())
                raise UnicodeEncodeError("ascii", text, start, start + 1, f"the {name!r} header must be ASCII")


def _repeatable(method: str, headers: dict[str, str], repeatable: bool) -> bool:
    return repeatable or method in IDEMPOTENT or any(name.lower() == "idempotency-key" for name in headers)


_poll = getattr(select, "poll", None)
_TRANSPORTS: weakref.WeakSet[KeepAliveTransport] = weakref.WeakSet()


def _forget_connections_after_fork() -> None:
    for transport in list(_TRANSPORTS):
        transport._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_connections_after_fork)
