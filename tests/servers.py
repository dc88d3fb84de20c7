"""Real server processes for tests that need them: the web server (WSGI) and uvicorn (ASGI) against the test database.

Tests using these must use `django_db(transaction=True)`, so that what they write is committed and visible to
the server process, and the server's writes are visible to the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.db import connection

from memory_admin.embedded import free_port
from memory_admin.runner import web_argv

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def _environment() -> dict[str, str]:
    settings_dict = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD']}@{settings_dict['HOST']}:"
        f"{settings_dict['PORT']}/{settings_dict['NAME']}"
    )
    env["LOG_LEVEL"] = "warning"
    return env


class ServerProcess:
    def __init__(self, argv: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.port = port
        self.env = env or {}  # on top of the test's environment, e.g. another REDIS_URL or DATABASE_URL
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        self.process = subprocess.Popen(self.argv, env={**_environment(), **self.env}, cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server {self.argv[0]} did not answer on port {self.port}")

    def kill(self) -> None:
        """kill -9 the server and every worker it forked: no graceful shutdown, no flushing."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def web_server(
    port: int | None = None, workers: int = 2, threads: int = 4, env: dict[str, str] | None = None
) -> ServerProcess:
    """The web server exactly as `make run` starts it (granian's WSGI workers, the hot lane in front of Django)."""
    port = port or free_port()
    return ServerProcess(web_argv("127.0.0.1", port, workers=workers, threads=threads), port, env)


@contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def uvicorn(port: int | None = None, env: dict[str, str] | None = None) -> ServerProcess:
    """The ASGI server: pages and WebSockets from one origin, as the dashboard's browser tests need."""
    port = port or free_port()
    argv = [
        str(BIN / "uvicorn"),
        "memory_admin.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return ServerProcess(argv, port, env)
