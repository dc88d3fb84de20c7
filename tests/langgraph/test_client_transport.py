"""The sync client's own transport (agent_memory_client.transport): kept connections per thread, a connection the
server dropped while idle replaced without the caller noticing, and a server that is gone reported as the
transport error the client's retries know."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from agent_memory_client.client import MemoryClient, RetryPolicy
from agent_memory_client.errors import ApiError
from agent_memory_client.transport import KeepAliveTransport

from memory_admin.embedded import free_port


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]] = []
    connections: list[socket.socket] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append({"path": self.path, "body": json.loads(body), "peer": self.client_address})
        self.connections.append(self.connection)
        payload = json.dumps({"ok": True, "n": len(self.seen)}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, "peer": self.client_address})
        if self.path.endswith("/chunked"):  # a body in chunks, as a streaming server sends it
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in (b'{"parts": ', b"[1, 2, 3]}"):
                self.wfile.write(b"%x;note=x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\nX-Trailer: done\r\n\r\n")
            return
        if self.path.endswith("/closing"):  # an answer after which the server closes the connection
            payload = b'{"closing": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True
            return
        payload = json.dumps({"error": {"code": "not_found", "message": "nope", "details": {}}}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    _Recorder.seen = []
    _Recorder.connections = []
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _client(httpd: ThreadingHTTPServer, **options: Any) -> MemoryClient:
    host, port = httpd.server_address[:2]
    return MemoryClient(f"http://{host!s}:{port}", "mk_test", idempotency_keys=False, **options)


def test_requests_of_one_thread_share_one_kept_connection(server: ThreadingHTTPServer) -> None:
    client = _client(server)

    answers = [client.request("POST", "sessions", body={"i": i}) for i in range(3)]

    assert [answer["n"] for answer in answers] == [1, 2, 3]
    assert len({request["peer"] for request in _Recorder.seen}) == 1
    assert _Recorder.seen[0]["path"] == "/api/v1/sessions"
    client.close()


def test_a_connection_dropped_while_idle_is_replaced_and_the_request_sent_once(server: ThreadingHTTPServer) -> None:
    client = _client(server)
    client.request("POST", "sessions", body={"i": 0})
    _Recorder.connections[-1].shutdown(socket.SHUT_RDWR)  # the server closes the idle keep-alive connection

    answer = client.request("POST", "sessions", body={"i": 1})

    assert answer["n"] == 2
    assert [request["body"]["i"] for request in _Recorder.seen] == [0, 1]
    assert len({request["peer"] for request in _Recorder.seen}) == 2, "the second went on a new connection"
    client.close()


def test_a_chunked_answer_is_read_whole_and_the_connection_kept(server: ThreadingHTTPServer) -> None:
    host, port = server.server_address[:2]
    transport = KeepAliveTransport(f"http://{host!s}:{port}", timeout=5)

    first = transport.request("GET", "/chunked", content=None, params=None, headers={})
    second = transport.request("GET", "/chunked", content=None, params=None, headers={})

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"parts": [1, 2, 3]}
    assert len({request["peer"] for request in _Recorder.seen}) == 1
    transport.close()


def test_after_an_answer_that_closes_the_connection_the_next_request_opens_another(
    server: ThreadingHTTPServer,
) -> None:
    host, port = server.server_address[:2]
    transport = KeepAliveTransport(f"http://{host!s}:{port}", timeout=5)

    closing = transport.request("GET", "/closing", content=None, params=None, headers={})
    after = transport.request("POST", "/api/v1/sessions", content=b"{}", params=None, headers={})

    assert (closing.status_code, closing.json(), after.status_code) == (200, {"closing": True}, 201)
    assert len({request["peer"] for request in _Recorder.seen}) == 2
    transport.close()


def test_an_error_answer_is_the_api_error_it_describes(server: ThreadingHTTPServer) -> None:
    client = _client(server)

    with pytest.raises(ApiError) as raised:
        client.request("GET", "sessions/nope")

    assert raised.value.status == 404 and raised.value.code == "not_found"
    client.close()


def test_a_server_that_is_gone_is_a_transport_error_after_the_retries() -> None:
    client = MemoryClient(
        f"http://127.0.0.1:{free_port()}", "mk_test", retry=RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.01)
    )

    with pytest.raises(httpx.TransportError):
        client.request("POST", "sessions", body={})
    client.close()


def test_a_base_url_with_a_path_prefix_keeps_it(server: ThreadingHTTPServer) -> None:
    host, port = server.server_address[:2]
    transport = KeepAliveTransport(f"http://{host!s}:{port}/memory", timeout=5)

    reply = transport.request("POST", "/api/v1/sessions", content=b"{}", params=None, headers={})

    assert reply.status_code == 201 and _Recorder.seen[-1]["path"] == "/memory/api/v1/sessions"
    transport.close()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/v1/langgraph/threads/a\r\nX-Injected: 1/saves", {}),
        ("/api/v1/langgraph/threads/a b/saves", {}),
        ("/api/v1/sessions", {"Authorization": "Bearer key\r\nX-Injected: 1"}),
    ],
)
def test_a_target_or_header_that_would_break_the_request_is_refused_before_sending(
    server: ThreadingHTTPServer, path: str, headers: dict[str, str]
) -> None:
    host, port = server.server_address[:2]
    transport = KeepAliveTransport(f"http://{host!s}:{port}", timeout=5)

    with pytest.raises(httpx.TransportError):
        transport.request("POST", path, content=b"{}", params=None, headers=headers)
    after = transport.request("POST", "/api/v1/sessions", content=b"{}", params=None, headers={})

    assert after.status_code == 201
    assert [request["path"] for request in _Recorder.seen] == ["/api/v1/sessions"]
    transport.close()
