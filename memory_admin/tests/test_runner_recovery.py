"""`make run` killed outright (kill -9, the OOM killer) leaves its web server, websockets, worker and beat
running in their own sessions: `make stop` and the next `make run` stop them, and only them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from memory_admin import runner
from memory_admin.embedded import port_answers

# A stand-in for `make run`: holds the profile's lock and starts its children through the runner's own
# Supervisor, as `make run` does, then waits to be killed. argv: profile dir, then one command per child.
STAND_IN = """
import json, sys, time, pathlib
from memory_admin.embedded import exclusive
from memory_admin.runner import Supervisor
profile = pathlib.Path(sys.argv[1])
with exclusive(profile / "lock"):
    supervisor = Supervisor(profile)
    for index, command in enumerate(sys.argv[2:]):
        supervisor.spawn(f"child{index}", ["sh", "-c", command], {})
    supervisor.record(url="http://127.0.0.1:1/")
    (profile / "started").write_text("yes")
    while True:
        time.sleep(0.1)
"""

LISTEN = (
    f"exec {sys.executable} -c 'import socket, sys, time; s = socket.socket(); "
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); '
    "s.listen(); time.sleep(300)' {port}"
)


# Every process a killed stand-in left, killed at the end of its test whatever the test found.
_LEFT: list[psutil.Process] = []


def _killed_run(profile: Path, *commands: str) -> list[psutil.Process]:
    """Start the stand-in, wait until its children run, kill it with SIGKILL; return its children (and theirs)."""
    stand_in = subprocess.Popen([sys.executable, "-c", STAND_IN, str(profile), *commands], cwd=runner.ROOT)
    deadline = time.monotonic() + 30
    while not (profile / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let `sh` start its own children
    children = psutil.Process(stand_in.pid).children(recursive=True)
    _LEFT.extend(children)
    os.kill(stand_in.pid, signal.SIGKILL)
    stand_in.wait()
    return children


def _running(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_gone(processes: list[psutil.Process], timeout: float = 5) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while _running(processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _running(processes)


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated program in its own session (as the service's processes are)."""
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(runner, "VAR", tmp_path)
    profile = tmp_path / "run"
    profile.mkdir()
    yield profile
    for process in _running(_LEFT):
        process.kill()
    _LEFT.clear()


def test_make_stop_after_make_run_was_killed_stops_the_processes_it_left_running(
    profile: Path, stranger: subprocess.Popen[bytes]
) -> None:
    # Two children, one of them with a child of its own (as granian's and Celery's workers are).
    children = _killed_run(profile, "exec sleep 300", "sleep 301 & sleep 302; wait")
    assert len(_running(children)) == 4, "the children outlive the killed run"
    # A PID in the state file that an unrelated program has now (the run's process ended, the PID was reused).
    state = json.loads((profile / "state.json").read_text())
    state["children"].append({"name": "beat", "pid": stranger.pid, "pgid": stranger.pid, "start": "other-boot:1"})
    (profile / "state.json").write_text(json.dumps(state))

    code = runner.main(["stop", "run"])

    assert code == 0
    assert _wait_gone(children) == []
    assert stranger.poll() is None, "stop signalled a process the run did not start"
    assert not (profile / "state.json").exists()


def test_the_next_make_run_stops_what_a_killed_run_left_before_it_checks_the_ports(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        leftover_port = probe.getsockname()[1]
    children = _killed_run(profile, LISTEN.format(port=leftover_port))
    assert _running(children)
    deadline = time.monotonic() + 10
    while not port_answers(leftover_port) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The WebSocket port is held by an unrelated program, so the run stops right after its port checks.
    with socket.socket() as unrelated:
        unrelated.bind(("127.0.0.1", 0))
        unrelated.listen()
        monkeypatch.setenv("PORT", str(leftover_port))
        monkeypatch.setenv("WEBSOCKET_PORT", str(unrelated.getsockname()[1]))

        code = runner.run()

        err = capsys.readouterr().err
        assert code == 1
        assert "that an earlier run left running" in err
        assert f"port {leftover_port} is taken" not in err
        assert f"port {unrelated.getsockname()[1]} is taken" in err
    assert _wait_gone(children) == []


def test_make_stop_does_not_signal_a_process_that_reused_the_runs_pid(
    profile: Path, stranger: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    from memory_admin.embedded import exclusive

    # Another command holds the lock (a run starting up); the state file is an older run's, whose PID is reused.
    (profile / "state.json").write_text(json.dumps({"pid": stranger.pid, "start": "other-boot:1", "url": "x"}))
    with exclusive(profile / "lock") as held:
        assert held
        code = runner.main(["stop", "run"])

    assert code == 1
    assert stranger.poll() is None
    assert "still starting" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "abc", "PORT='abc' is not a port number"),
        ("PORT", "70000", "PORT=70000 is not a port number"),
        ("WEB_WORKERS", "two", "WEB_WORKERS='two' is not a positive whole number"),
    ],
)
def test_a_malformed_port_or_worker_count_is_reported_in_one_line(
    profile: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(name, value)

    code = runner.run()

    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_an_empty_secret_key_file_is_replaced_by_a_new_secret(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("")

    path = runner._secret_file(tmp_path)

    assert len(path.read_text()) >= 50


def test_a_run_whose_migrations_fail_says_so_and_stops_the_servers_it_started(
    profile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from memory_admin.embedded import EmbeddedRedis, free_port

    # Nothing listens there: `migrate` fails, after the run has started its own Redis.
    monkeypatch.setenv("DATABASE_URL", f"postgres://postgres@127.0.0.1:{free_port()}/memory")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("PORT", str(free_port()))
    monkeypatch.setenv("WEBSOCKET_PORT", str(free_port()))

    code = runner.run()

    err = capsys.readouterr().err
    assert code == 1
    assert "`migrate --noinput` failed" in err
    assert EmbeddedRedis(profile / "redis").pid() is None, "the run left its Redis running"
    assert not (profile / "state.json").exists()
