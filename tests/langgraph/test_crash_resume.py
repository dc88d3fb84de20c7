"""A LangGraph run killed in the middle of a node resumes in a new process from the service: the parallel
branch that had finished is not run again, the interrupt is answered, and the run completes — also when the
service itself was killed and restarted and Redis flushed between the crash and the resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import World
from memory_admin.health import redis_client
from tests.servers import ROOT, ServerProcess, web_server

AGENT = ROOT / "examples" / "crash_resume_agent.py"


def _run(phase: str, url: str, key: str, thread_id: str, marks: Path, *, crash: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "AGENT_MEMORY_URL": url, "AGENT_MEMORY_KEY": key, "CRASH": "1" if crash else "0"}
    return subprocess.Popen(
        [sys.executable, str(AGENT), phase, thread_id, str(marks)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _crash_in_slow(url: str, key: str, thread_id: str, marks: Path) -> None:
    process = _run("start", url, key, thread_id, marks, crash=True)
    deadline = time.monotonic() + 60
    while "slow:waiting-to-be-killed" not in (marks.read_text() if marks.exists() else ""):
        assert process.poll() is None, "the agent ended before it could be killed"
        assert time.monotonic() < deadline, "the agent never reached the middle of `slow`"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def _count(marks: Path, mark: str) -> int:
    return sum(1 for line in marks.read_text().splitlines() if line.split()[0] == mark)


def _resume_and_answer(url: str, key: str, thread_id: str, marks: Path) -> None:
    resumed = _finish(_run("resume", url, key, thread_id, marks))
    assert resumed["next"] == ["review"]
    assert resumed["interrupts"] == [
        {"question": "Publish these findings?", "findings": ["plan for refunds", "fast result", "slow result"]}
    ]
    assert _count(marks, "fast:done") == 1  # the finished branch's writes came back from the service
    assert _count(marks, "slow:start") == 2 and _count(marks, "slow:done") == 1
    assert _count(marks, "plan:done") == 1

    answered = _finish(_run("answer", url, key, thread_id, marks))
    assert answered["interrupts"] == []
    assert answered["next"] == []
    assert answered["state"]["approved"] is True
    assert answered["state"]["summary"] == "3 findings, approved=True"
    assert _count(marks, "review:done") == 1 and _count(marks, "finish:done") == 1
    assert _count(marks, "fast:done") == 1 and _count(marks, "plan:done") == 1


def test_a_run_killed_mid_node_resumes_in_a_new_process_without_rerunning_the_finished_branch(
    service: ServerProcess, world: World, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.txt"
    _crash_in_slow(service.url, world.acme.raw_key, "lg-crash-1", marks)
    assert _count(marks, "fast:done") == 1 and _count(marks, "slow:done") == 0

    _resume_and_answer(service.url, world.acme.raw_key, "lg-crash-1", marks)


def test_a_run_resumes_after_the_service_was_killed_and_redis_flushed(
    transactional_db: None, world: World, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.txt"
    first = web_server(workers=1, threads=4)
    first.start()
    try:
        _crash_in_slow(first.url, world.acme.raw_key, "lg-crash-2", marks)
    finally:
        first.kill()
    redis_client().flushdb()

    second = web_server(workers=1, threads=4)
    second.start()
    try:
        _resume_and_answer(second.url, world.acme.raw_key, "lg-crash-2", marks)
    finally:
        second.stop()
