"""What the clients send and how they read answers, against scripted servers on local sockets: a request that
may have reached the service is repeated only when a repeat is harmless, a lost answer to a DELETE is not a
404, redirects are errors, Retry-After is read as the standard says, a write still in flight under its key is
waited for, ids are one path segment each, a malformed answer is a protocol error, connections end with the
thread, event loop or process that used them, and the sync and async clients agree on proxies from the
environment, headers that are not ASCII and timeouts."""

from __future__ import annotations

import asyncio
import email.utils
import gc
import json
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from agent_memory_client.client import AsyncMemoryClient, MemoryClient, RetryPolicy
from agent_memory_client.errors import ApiError, NotFoundError
from agent_memory_client.transport import KeepAliveTransport, TransportError

from tests.langgraph.conftest import run_async

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.01)


@dataclass
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]


@dataclass
class _Scripted:
    """A server that reads each request whole and sends what `answer(index, request)` returns: the bytes of a
    response, or None to close the connection without answering (the request was received)."""

    answer: Callable[[int, _Request], bytes | None]
    requests: list[_Request] = field(default_factory=list)
    open_connections: int = 0
    sock: socket.socket = field(default_factory=socket.socket)

    def __post_init__(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.open_connections += 1
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        reader = conn.makefile("rb")
        try:
            while (line := reader.readline()) != b"":
                headers: dict[str, str] = {}
                while (header := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length", 0)))
                method, target, _ = line.decode("latin-1").split(" ", 2)
                request = _Request(method, target, headers, body, peer)
                with self._lock:
                    index = len(self.requests)
                    self.requests.append(request)
                response = self.answer(index, request)
                if response is None:
                    return
                conn.sendall(response)
        except OSError:
            pass
        finally:
            reader.close()
            conn.close()
            with self._lock:
                self.open_connections -= 1

    def close(self) -> None:
        self.sock.close()


def _response(status: int, body: Any = None, headers: str = "", reason: str = "X") -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(payload)}\r\n{headers}\r\n"
    return head.encode() + payload


OK = _response(200, {"ok": True})
NOT_FOUND = _response(404, {"error": {"code": "not_found", "message": "No such memory.", "details": {}}})


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[int, _Request], bytes | None]], _Scripted]]:
    servers: list[_Scripted] = []

    def make(answer: Callable[[int, _Request], bytes | None]) -> _Scripted:
        servers.append(_Scripted(answer))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# --- repeating a request that may have been received ----------------------------------------------------------


def test_a_post_without_a_key_is_not_sent_again_after_its_reused_connection_failed(scripted: Any) -> None:
    server = scripted(lambda index, request: None if index == 1 else _response(201, {"n": index}))
    client = MemoryClient(server.url, "mk_test", idempotency_keys=False, retry=FAST)
    client.create_memory(content="one", scope="user", user_id="u")

    with pytest.raises(httpx.TransportError):
        client.create_memory(content="two", scope="user", user_id="u")

    assert [json.loads(request.body)["content"] for request in server.requests] == ["one", "two"]
    client.close()


@pytest.mark.parametrize(
    ("options", "call"),
    [
        ({}, lambda client: client.create_memory(content="two")),  # keyed
        ({"idempotency_keys": False}, lambda client: client.save_batch("t1", {"ops": []})),  # an upsert
        ({"idempotency_keys": False}, lambda client: client.request("POST", "langgraph/store/batch", keyed=False)),
        ({"idempotency_keys": False}, lambda client: client.list_checkpoints("t1")),  # a read
        ({"idempotency_keys": False}, lambda client: client.delete_memory("m1")),  # idempotent
    ],
    ids=["keyed-post", "checkpointer-upsert", "store-reads", "get", "delete"],
)
def test_a_request_a_repeat_cannot_harm_is_sent_again_on_a_new_connection(
    scripted: Any, options: dict[str, Any], call: Callable[[MemoryClient], Any]
) -> None:
    server = scripted(lambda index, request: None if index == 1 else _response(200, {"n": index}))
    client = MemoryClient(server.url, "mk_test", retry=RetryPolicy(attempts=1), **options)
    client.request("GET", "whoami")

    call(client)

    first, second = server.requests[1:]
    assert (first.method, first.target, first.body) == (second.method, second.target, second.body)
    assert first.peer != second.peer
    assert first.headers.get("idempotency-key") == second.headers.get("idempotency-key")
    client.close()


@pytest.mark.parametrize(("status", "sent"), [(503, 2), (429, 2), (502, 1), (504, 1)])
def test_a_post_without_a_key_is_retried_only_after_an_answer_saying_it_was_not_carried_out(
    scripted: Any, status: int, sent: int
) -> None:
    server = scripted(lambda index, request: _response(status) if index == 0 else _response(201, {"id": "m1"}))
    client = MemoryClient(server.url, "mk_test", idempotency_keys=False, retry=FAST)

    if sent == 2:
        assert client.create_memory(content="one") == {"id": "m1"}
    else:
        with pytest.raises(ApiError) as raised:
            client.create_memory(content="one")
        assert raised.value.status == status

    assert len(server.requests) == sent
    client.close()


# --- answers ---------------------------------------------------------------------------------------------------


def test_a_redirect_is_an_error_and_is_not_followed(scripted: Any) -> None:
    redirect = _response(308, headers="Location: https://elsewhere.example/\r\n", reason="Permanent Redirect")
    server = scripted(lambda index, request: redirect)
    client = MemoryClient(server.url, "mk_test", retry=FAST)

    with pytest.raises(ApiError) as raised:
        client.delete_memory("m1")
    with pytest.raises(ApiError) as raised_async:
        run_async(lambda: AsyncMemoryClient(server.url, "mk_test", retry=FAST).delete_thread("t1"))

    assert raised.value.status == raised_async.value.status == 308
    assert "https://elsewhere.example/" in raised.value.message
    assert [request.method for request in server.requests] == ["DELETE", "DELETE"]
    client.close()


def test_a_retried_delete_answered_404_was_done_by_the_attempt_whose_answer_was_lost(scripted: Any) -> None:
    lost_answers = {0, 2}  # the first DELETE of each client: carried out, its answer lost with the connection
    server = scripted(lambda index, request: None if index in lost_answers else NOT_FOUND)
    client = MemoryClient(server.url, "mk_test", retry=FAST)

    client.delete_memory("m1")  # no error
    run_async(lambda: AsyncMemoryClient(server.url, "mk_test", retry=FAST).delete_memory("m1"))
    with pytest.raises(NotFoundError):  # a 404 on the first attempt is still one
        client.delete_memory("m2")

    assert [request.target for request in server.requests] == ["/api/v1/memories/m1"] * 4 + ["/api/v1/memories/m2"]
    client.close()


def _read_head(reader: Any) -> None:
    while reader.readline() not in (b"\r\n", b""):
        pass


def _restarting_server(listener: socket.socket) -> None:
    """Answers whoami, takes the DELETE that follows and goes down without answering it, refuses connections
    for a moment, then answers the next request with a 404 (the requests carry no body)."""
    port = listener.getsockname()[1]
    conn, _ = listener.accept()
    with listener, conn, conn.makefile("rb") as reader:
        _read_head(reader)
        conn.sendall(OK)
        _read_head(reader)  # the DELETE: carried out, then the service goes down
    time.sleep(0.1)  # connections are refused meanwhile
    with socket.create_server(("127.0.0.1", port)) as restarted:
        conn, _ = restarted.accept()
        with conn, conn.makefile("rb") as reader:
            _read_head(reader)
            conn.sendall(NOT_FOUND)
            time.sleep(0.2)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_retried_delete_answered_404_after_the_service_restarted_was_done_by_the_lost_attempt(
    use_async: bool,
) -> None:
    """The first DELETE is carried out and its answer lost with the connection; the connection's resend finds
    the service restarting (refused), and the next attempt is answered 404: the delete succeeded."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    server = threading.Thread(target=_restarting_server, args=(listener,), daemon=True)
    server.start()
    policy = RetryPolicy(attempts=4, backoff=0.4, max_backoff=0.4)

    async def delete_async() -> None:
        client = AsyncMemoryClient(url, "mk_test", retry=policy)
        await client.whoami()
        await client.delete_memory("m1")
        await client.aclose()

    if use_async:
        run_async(delete_async)  # no NotFoundError
    else:
        client = MemoryClient(url, "mk_test", retry=policy)
        client.whoami()
        client.delete_memory("m1")  # no NotFoundError
        client.close()
    server.join(10)
    assert not server.is_alive()


@pytest.mark.parametrize("retry_after", ["-5", "nan", "inf", "soon", ""])
def test_an_invalid_retry_after_falls_back_to_backoff(scripted: Any, retry_after: str) -> None:
    busy = _response(503, headers=f"Retry-After: {retry_after}\r\n")
    server = scripted(lambda index, request: busy if index % 2 == 0 else OK)
    client = MemoryClient(server.url, "mk_test", retry=FAST)
    started = time.monotonic()

    assert client.request("GET", "whoami") == {"ok": True}
    assert run_async(lambda: AsyncMemoryClient(server.url, "mk_test", retry=FAST).request("GET", "whoami")) == {
        "ok": True
    }

    assert time.monotonic() - started < 2
    client.close()


def test_a_retry_after_date_is_waited_for_up_to_the_cap(scripted: Any) -> None:
    stamps: list[float] = []

    def answer(index: int, request: _Request) -> bytes:
        stamps.append(time.monotonic())
        later = email.utils.formatdate(time.time() + 30, usegmt=True)
        return _response(503, headers=f"Retry-After: {later}\r\n") if index % 2 == 0 else OK

    server = scripted(answer)
    policy = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.1)  # Retry-After is capped at 0.5 s

    MemoryClient(server.url, "mk_test", retry=policy).request("GET", "whoami")
    run_async(lambda: AsyncMemoryClient(server.url, "mk_test", retry=policy).request("GET", "whoami"))

    assert 0.45 < stamps[1] - stamps[0] < 2
    assert 0.45 < stamps[3] - stamps[2] < 2


# --- a write still in flight under its key --------------------------------------------------------------------

IN_FLIGHT = _response(
    409,
    {
        "error": {
            "status": 409,
            "code": "conflict",
            "message": "A request with this Idempotency-Key is still being processed; retry shortly.",
            "details": {"header": "Idempotency-Key", "in_flight": True},
        }
    },
    headers="Retry-After: 1\r\n",
)
# Two attempts: one that times out, and one retry, which the service answers "in flight".
TWO = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02)


def _slow_then_in_flight(answers_in_flight: int) -> Any:
    def answer(index: int, request: _Request) -> bytes:
        if index == 0:
            time.sleep(0.6)  # past the client's timeout: the first attempt is still running on the service
            return _response(201, {"id": "m-1"})
        return IN_FLIGHT if index <= answers_in_flight else _response(201, {"id": "m-1"})

    return answer


def test_a_write_still_in_flight_is_waited_for_with_the_same_key_past_the_attempts(scripted: Any) -> None:
    sync_server = scripted(_slow_then_in_flight(3))
    async_server = scripted(_slow_then_in_flight(3))

    created = MemoryClient(sync_server.url, "mk_test", timeout=0.3, retry=TWO).create_memory(content="slow")
    acreated = run_async(
        lambda: AsyncMemoryClient(async_server.url, "mk_test", timeout=0.3, retry=TWO).create_memory(content="slow")
    )

    assert created == acreated == {"id": "m-1"}
    for server in (sync_server, async_server):
        assert len(server.requests) == 5
        assert len({request.headers["idempotency-key"] for request in server.requests}) == 1


def test_a_write_in_flight_for_longer_than_in_flight_wait_is_the_409(scripted: Any) -> None:
    server = scripted(lambda index, request: IN_FLIGHT)
    policy = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02, in_flight_wait=0.3)
    started = time.monotonic()

    with pytest.raises(ApiError) as raised:
        MemoryClient(server.url, "mk_test", retry=policy).create_memory(content="slow")
    with pytest.raises(ApiError):
        run_async(lambda: AsyncMemoryClient(server.url, "mk_test", retry=policy).create_memory(content="slow"))

    assert raised.value.status == 409 and raised.value.details["in_flight"] is True
    assert 0.55 <= time.monotonic() - started < 2.5
    assert len({request.headers["idempotency-key"] for request in server.requests}) == 2  # one per call


@pytest.mark.parametrize(
    "status_line",
    ["HTTP/1.1 2000 OK", "HTTP/1.1 099 Low", "HTTP/1.1 999 Huh", "HTTP/1.1 20x OK", "HTTP/2 200 OK", "HTTP/1.1 ²00 OK"],
)
def test_a_status_line_without_a_three_digit_status_from_100_to_599_is_a_protocol_error(
    scripted: Any, status_line: str
) -> None:
    server = scripted(lambda index, request: f"{status_line}\r\nContent-Length: 2\r\n\r\n{{}}".encode("latin-1"))
    transport = KeepAliveTransport(server.url, timeout=5)

    with pytest.raises(httpx.TransportError):
        transport.request("GET", "/x", content=None, params=None, headers={})
    transport.close()


def test_content_lengths_that_disagree_are_a_protocol_error_and_the_connection_is_dropped(scripted: Any) -> None:
    def answer(index: int, request: _Request) -> bytes:
        if request.target == "/conflicting":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 3\r\n\r\nabcdefghij"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\n{}"

    server = scripted(answer)
    transport = KeepAliveTransport(server.url, timeout=5)

    agreeing = transport.request("GET", "/agreeing", content=None, params=None, headers={})
    with pytest.raises(httpx.TransportError):
        transport.request("GET", "/conflicting", content=None, params=None, headers={})
    after = transport.request("GET", "/agreeing", content=None, params=None, headers={})

    assert agreeing.content == after.content == b"{}"
    assert server.requests[0].peer == server.requests[1].peer != server.requests[2].peer
    transport.close()


# --- ids in paths ----------------------------------------------------------------------------------------------


def test_an_id_is_one_path_segment_whatever_it_holds(scripted: Any) -> None:
    server = scripted(lambda index, request: _response(200, {}))
    client = MemoryClient(server.url, "mk_test")
    memory_id = "x/../../sessions/s?1#2 日本%"

    client.delete_memory(memory_id)
    run_async(lambda: AsyncMemoryClient(server.url, "mk_test").delete_memory(memory_id))
    client.list_checkpoints("team:alpha.v1_x-2")

    encoded = "/api/v1/memories/x%2F..%2F..%2Fsessions%2Fs%3F1%232%20%E6%97%A5%E6%9C%AC%25"
    assert [request.target for request in server.requests] == [
        encoded,
        encoded,
        "/api/v1/langgraph/threads/team%3Aalpha.v1_x-2/checkpoints",
    ]
    client.close()


@pytest.mark.parametrize("thread_id", ["a/b", "a?b", "a#b", "日本", "a b", ".", "", "-a", "x" * 129])
def test_a_thread_id_the_service_cannot_hold_is_refused_before_sending(scripted: Any, thread_id: str) -> None:
    server = scripted(lambda index, request: OK)
    client = MemoryClient(server.url, "mk_test")

    with pytest.raises(ValueError, match="not a valid thread or session id"):
        client.list_checkpoints(thread_id)
    with pytest.raises(ValueError, match="not a valid thread or session id"):
        run_async(lambda: AsyncMemoryClient(server.url, "mk_test").save_batch(thread_id, {"ops": []}))
    with pytest.raises(ValueError, match="not a valid thread or session id"):
        client.get_session(thread_id)

    assert server.requests == []
    client.close()


# --- the life of connections -----------------------------------------------------------------------------------


def test_a_threads_connection_is_closed_when_the_thread_ends(scripted: Any) -> None:
    server = scripted(lambda index, request: OK)
    client = MemoryClient(server.url, "mk_test")
    client.request("GET", "whoami")  # this thread's connection, kept

    for _ in range(20):
        thread = threading.Thread(target=client.request, args=("GET", "whoami"))
        thread.start()
        thread.join()

    assert len({request.peer for request in server.requests}) == 21
    assert _wait_for(lambda: server.open_connections == 1), f"{server.open_connections} connections still open"
    client.request("GET", "whoami")
    assert server.requests[-1].peer == server.requests[0].peer
    client.close()
    assert _wait_for(lambda: server.open_connections == 0)


def test_a_forked_child_never_uses_its_parents_connection(scripted: Any) -> None:
    server = scripted(lambda index, request: _response(200, {"peer": list(request.peer)}))
    client = MemoryClient(server.url, "mk_test")
    parent_peer = client.request("GET", "parent")["peer"]
    read_end, write_end = os.pipe()

    pid = os.fork()
    if pid == 0:  # the child: report the connection its requests went on, then leave without cleaning up
        try:
            peers = [client.request("GET", "child")["peer"] for _ in range(3)]
            os.write(write_end, json.dumps(peers).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    child_peers = json.loads(os.read(read_end, 10_000))
    os.close(read_end)
    os.close(write_end)
    after = client.request("GET", "parent")["peer"]

    assert child_peers[0] != parent_peer and child_peers == [child_peers[0]] * 3  # its own, kept
    assert after == parent_peer  # the parent's connection is still open and its own
    client.close()


def test_the_async_client_closes_its_connections_with_each_event_loop_and_closes_safely_after(
    scripted: Any,
) -> None:
    server = scripted(lambda index, request: OK)
    client = AsyncMemoryClient(server.url, "mk_test")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(3):  # e.g. one graph run per asyncio.run
            assert run_async(lambda: client.request("GET", "whoami")) == {"ok": True}
            assert _wait_for(lambda: server.open_connections == 0), "the loop's connection outlived it"
        run_async(client.aclose)  # from yet another loop: nothing left to close, and no error
        gc.collect()

    assert [str(warning.message) for warning in caught if warning.category is ResourceWarning] == []

    async def used_then_closed() -> None:
        await client.request("GET", "whoami")
        await client.aclose()
        await asyncio.sleep(0)

    run_async(used_then_closed)
    assert _wait_for(lambda: server.open_connections == 0)
    assert len(server.requests) == 4


# --- the sync and async clients alike ---------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_neither_client_takes_a_proxy_from_the_environment(
    scripted: Any, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    server = scripted(lambda index, request: OK)
    monkeypatch.setenv(variable, "http://127.0.0.1:9")  # nothing listens there
    once = RetryPolicy(attempts=1)

    answer = MemoryClient(server.url, "mk_test", retry=once).whoami()
    answer_async = run_async(lambda: AsyncMemoryClient(server.url, "mk_test", retry=once).whoami())

    assert answer == answer_async == {"ok": True}
    assert [request.target for request in server.requests] == ["/api/v1/whoami"] * 2


@pytest.mark.parametrize("api_key", ["mk_clé", "mk_ключ"])
def test_a_header_that_is_not_ascii_is_refused_at_once_by_both_clients(scripted: Any, api_key: str) -> None:
    server = scripted(lambda index, request: OK)
    client = MemoryClient(server.url, api_key, retry=RetryPolicy(attempts=4, backoff=1, max_backoff=1))
    started = time.monotonic()

    with pytest.raises(UnicodeEncodeError):
        client.whoami()
    with pytest.raises(UnicodeEncodeError):
        run_async(lambda: AsyncMemoryClient(server.url, api_key).whoami())

    assert time.monotonic() - started < 1  # not retried
    assert server.requests == []
    client.close()


def test_a_read_timeout_is_httpxs_read_timeout_in_both_clients(scripted: Any) -> None:
    def late(index: int, request: _Request) -> bytes:
        time.sleep(0.5)
        return OK

    server = scripted(late)
    once = RetryPolicy(attempts=1)

    with pytest.raises(httpx.ReadTimeout) as raised:
        MemoryClient(server.url, "mk_test", timeout=0.1, retry=once).whoami()
    with pytest.raises(httpx.ReadTimeout):
        run_async(lambda: AsyncMemoryClient(server.url, "mk_test", timeout=0.1, retry=once).whoami())

    assert isinstance(raised.value, TransportError)  # still the sync transport's one kind of failure
