"""Celery's worker logs as the web processes do: JSON lines with LOG_FORMAT=json, no task return values and
no exception texts (a database error quotes row values)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from memory_admin.tests.celery_probe import PERSONAL, app, probe


def _worker_output(queue: str, *, log_format: str) -> str:
    env = {**os.environ, "LOG_FORMAT": log_format, "LOG_LEVEL": "info"}
    argv = [str(Path(sys.executable).parent / "celery"), "-A", "memory_admin.tests.celery_probe", "worker"]
    argv += ["-l", "info", "-Q", queue, "-P", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        probe.apply_async(args=(f"my message: {PERSONAL}",), queue=queue)
        probe.apply_async(args=("fail",), queue=queue)
        deadline = time.monotonic() + 60
        output = b""
        assert worker.stdout is not None
        os.set_blocking(worker.stdout.fileno(), False)
        while time.monotonic() < deadline and output.count(b"tests.probe[") < 4:
            output += worker.stdout.read() or b""
            time.sleep(0.1)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        rest, _ = worker.communicate(timeout=30)
    return (output + (rest or b"")).decode()


def test_the_worker_logs_json_lines_without_return_values_or_exception_texts() -> None:
    output = _worker_output(f"log-probe-{uuid.uuid4().hex}", log_format="json")

    task_lines = [json.loads(line) for line in output.splitlines() if "tests.probe[" in line]
    events = [line["event"] for line in task_lines]
    assert any(event.endswith("received") for event in events), output
    assert any("succeeded in" in event for event in events), output
    failure = next(line for line in task_lines if "raised unexpected" in line["event"])
    assert failure["level"] == "error"
    assert failure["exception"]["type"] == "ValueError"
    assert PERSONAL not in output
    assert "my message" not in output
    assert app.main == "memory_admin"


def test_the_worker_logs_no_return_values_or_exception_texts_in_the_console_format_either() -> None:
    output = _worker_output(f"log-probe-{uuid.uuid4().hex}", log_format="console")

    assert "succeeded in" in output, output
    assert "raised unexpected" in output
    assert "my message" not in output
