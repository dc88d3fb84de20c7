"""The service under test: embedded Postgres + Redis under var/bench/, migrations, an API key, and the web
server started exactly as `make run` starts it (memory_admin.runner.web_argv), plus a Celery worker for the
snapshot tasks the event stream enqueues.

Servers this module starts run in their own process groups and are recorded in var/bench/server.json, so a
run that died without cleaning up is cleaned up by the next one.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from memory_admin.embedded import EmbeddedStack, free_port, pid_alive
from memory_admin.runner import BIN, ROOT, VAR, service_environment, web_argv

PROFILE = "bench"
PROFILE_DIR = VAR / PROFILE
STATE_FILE = PROFILE_DIR / "server.json"
HOST = "127.0.0.1"


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def environment() -> dict[str, str]:
    """Start (or adopt) the embedded servers of the bench profile; the environment the service runs with.

    Durable like `make run` (fsync and synchronous commit on): event appends pay for a real commit.
    """
    # Postgres runs as memory_admin.runner.PROFILES["bench"] says: durable, with a 4 GB buffer pool (with
    # 256 MB each global memory search read ~800 index pages from the OS cache). LangGraph's anchors run on
    # the same server.
    env = service_environment(PROFILE)
    env.update(
        {
            # The rate limiter still runs its Redis INCR on every request; it just never refuses one.
            "API_RATE_LIMIT_PER_MINUTE": "1000000000",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": env.get("BENCH_LOG_LEVEL", "info"),
            "DEBUG": "false",
        }
    )
    return env


def manage(env: dict[str, str], *args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE if capture else None,
        text=True,
    )
    return (result.stdout or "").strip()


def prepare(env: dict[str, str]) -> str:
    """Apply migrations; return a fresh API key of tenant `bench`."""
    say("applying migrations")
    manage(env, "migrate", "--noinput", "-v", "0")
    key = manage(env, "create_api_key", "--tenant", "bench", "--name", "bench", capture=True).splitlines()[-1]
    if not key.startswith("mk_"):
        raise RuntimeError(f"create_api_key printed {key!r}, not a key")
    return key


@dataclass
class Server:
    workers: int
    threads: int
    with_worker: bool = True
    port: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.workers}x{self.threads}"

    def start(self, env: dict[str, str], *, timeout: float = 60) -> None:
        cleanup_leftovers()
        self.port = free_port()
        argv = web_argv(HOST, self.port, workers=self.workers, threads=self.threads)
        log = (PROFILE_DIR / "web.log").open("wb")
        with log:
            self.processes["web"] = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if self.with_worker:
            worker_log = (PROFILE_DIR / "worker.log").open("wb")
            with worker_log:
                self.processes["worker"] = subprocess.Popen(
                    # `make run` passes `-q` after `worker`, which Celery 5.7 rejects (exit 2); -q is global.
                    [str(BIN / "celery"), "-q", "-A", "memory_admin", "worker", "-l", "warning", "-c", "2"],
                    env=env,
                    cwd=ROOT,
                    stdout=worker_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        STATE_FILE.write_text(json.dumps({name: p.pid for name, p in self.processes.items()}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes["web"].poll() is not None:
                raise RuntimeError(f"the web server exited early; see {PROFILE_DIR / 'web.log'}")
            worker = self.processes.get("worker")
            if worker is not None and worker.poll() is not None:
                raise RuntimeError(f"the Celery worker exited early; see {PROFILE_DIR / 'worker.log'}")
            if healthy(self.port):
                # Every worker imports Django lazily on its first request; touch them all before measuring.
                for _ in range(self.workers * 4):
                    healthy(self.port)
                return
            time.sleep(0.2)
        raise RuntimeError(f"the web server did not answer within {timeout:.0f}s; see {PROFILE_DIR / 'web.log'}")

    def stop(self, timeout: float = 15) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes.clear()
        STATE_FILE.unlink(missing_ok=True)

    def pids(self) -> dict[str, int | None]:
        return {name: process.pid for name, process in self.processes.items()}


def healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def cleanup_leftovers() -> None:
    """Stop the web server and worker that an earlier run recorded but did not stop (it was killed)."""
    try:
        recorded = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return
    for name, pid in recorded.items():
        if not isinstance(pid, int) or not pid_alive(pid):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"granian" in cmdline or b"celery" in cmdline:
            say(f"stopping the {name} (pid {pid}) an earlier run left behind")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            for _ in range(100):
                if not pid_alive(pid):
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
    STATE_FILE.unlink(missing_ok=True)


def stack_pids() -> dict[str, int | None]:
    stack = EmbeddedStack(PROFILE_DIR)
    return {"postgres": stack.postgres.pid(), "redis": stack.redis.pid()}


def results_dir() -> Path:
    path = ROOT / "bench" / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path
