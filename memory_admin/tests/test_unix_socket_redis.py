"""REDIS_URL=unix://… (accepted by the settings) must work for the Celery broker too, not only the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from memory_admin.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-real-secret-of-enough-length-0123456789abcdef"


@pytest.fixture
def unix_redis(tmp_path: Path) -> Iterator[Path]:
    socket_path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        [
            str(EmbeddedRedis.binary()),
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield socket_path
    finally:
        server.terminate()
        server.wait(10)


def test_a_task_is_queued_through_a_unix_socket_redis_url(unix_redis: Path) -> None:
    # kombu has no `unix` transport: every task sent raised KeyError('No such transport: unix'), and a
    # promotion answered 500 with its job row already committed.
    env = {**os.environ, "SECRET_KEY": SECRET, "REDIS_URL": f"unix://{unix_redis}?db=3"}
    env.pop("SECRET_KEY_FILE", None)
    env.pop("CELERY_BROKER_URL", None)
    code = (
        "import django; django.setup()\n"
        "from memory_admin import tasks\n"
        "from memory_admin.redis_guard import queue_task\n"
        "print(queue_task(tasks.heartbeat))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)

    assert result.stdout.strip() == "True", result.stdout + result.stderr
    assert redis.Redis(unix_socket_path=str(unix_redis), db=3).llen("celery") == 1
