"""The WebSocket server's own lines (uvicorn's) come out as the application's do: JSON with LOG_FORMAT=json."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

from memory_admin.runner import _uvicorn_argv


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_uvicorns_warning_about_a_malformed_request_is_a_json_line() -> None:
    port = _free_port()
    env = {**os.environ, "LOG_FORMAT": "json", "LOG_LEVEL": "info"}
    server = subprocess.Popen(
        _uvicorn_argv("127.0.0.1", port),
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "uvicorn did not start"
                time.sleep(0.2)
        with connection:
            connection.sendall(b"GARBAGE\r\n\r\n")
            assert connection.recv(100).startswith(b"HTTP/1.1 400")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        _, errors = server.communicate(timeout=30)

    lines = [line for line in errors.decode().splitlines() if "Invalid HTTP request" in line]
    assert lines, errors.decode()
    logged = json.loads(lines[0])
    assert logged["logger"] == "uvicorn.error"
    assert logged["level"] == "warning"
