"""`make run`'s launcher: a second run while one holds the data directory says so and leaves it alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memory_admin import runner
from memory_admin.embedded import exclusive


def test_a_second_run_while_one_is_running_says_so_and_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "VAR", tmp_path)
    profile = tmp_path / "run"
    profile.mkdir()
    (profile / "state.json").write_text(json.dumps({"pid": 4242, "url": "http://127.0.0.1:8000/"}))

    with exclusive(profile / "lock") as held:
        assert held
        code = runner.run()

    assert code == 1
    assert "already running (pid 4242) at http://127.0.0.1:8000/" in capsys.readouterr().err
    assert sorted(path.name for path in profile.iterdir()) == ["lock", "state.json"]


def test_a_taken_port_is_reported_instead_of_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    monkeypatch.setattr(runner, "VAR", tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("PORT", str(taken.getsockname()[1]))
        code = runner.run()

    assert code == 1
    assert "is taken by another program" in capsys.readouterr().err


@pytest.mark.django_db(transaction=True)
def test_make_run_serves_the_dashboard_with_workers_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx
    import psutil

    from memory_admin.embedded import free_port
    from tests.servers import _environment

    port = free_port()
    # Both ports picked free by the kernel: the default WebSocket port (PORT + 1) may be some other
    # socket's local port on a busy machine, and the run would stop at once.
    ws_port = next(candidate for candidate in iter(free_port, None) if candidate != port)
    env = {
        **_environment(),
        "MEMORY_VAR": str(tmp_path),
        "PORT": str(port),
        "WEBSOCKET_PORT": str(ws_port),
        "WEB_WORKERS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "memory_admin.runner", "run"],
        env=env,
        cwd=runner.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = ""
        deadline = time.monotonic() + 90
        while "Ctrl-C stops everything" not in banner and time.monotonic() < deadline:
            line = process.stdout.readline() if process.stdout else ""
            if not line and process.poll() is not None:
                break
            banner += line
        assert "Dashboard:  http://127.0.0.1:" in banner, banner
        assert "Demo agent API key" in banner
        key = next(line.split()[-1] for line in banner.splitlines() if line.strip().startswith("mk_"))
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/login/").status_code == 200
        whoami = httpx.get(f"{base}/api/v1/whoami", headers={"Authorization": f"Bearer {key}"})
        assert whoami.json()["tenant"] == "demo"
        workers_ok = False
        while not workers_ok and time.monotonic() < deadline:
            assert process.poll() is None, "the run stopped early"
            workers_ok = httpx.get(f"{base}/readyz").json()["layers"]["workers"]["ok"]
            time.sleep(1)
        assert workers_ok, "beat sent a heartbeat and a worker ran it"
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 4
    except Exception as failure:
        # What the run printed after its banner (which process stopped, and why) says what went wrong.
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        raise AssertionError(f"{failure!r}; the run printed after its banner:\n{output}") from failure
    os.kill(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    assert process.returncode == 0
    time.sleep(1)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]


def test_make_stop_asks_the_running_make_run_to_stop_and_waits_until_it_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys
    import time

    monkeypatch.setattr(runner, "VAR", tmp_path)
    profile = tmp_path / "run"
    # A stand-in for `make run` that holds the profile's lock and records its pid as the launcher does, and
    # takes a moment to stop its processes when asked.
    stand_in = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, os, pathlib, signal, sys, time\n"
            "from memory_admin.embedded import exclusive\n"
            "profile = pathlib.Path(sys.argv[1])\n"
            "def on_term(*_):\n"
            "    time.sleep(0.5)\n"
            "    (profile / 'stopped').write_text('asked')\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, on_term)\n"
            "with exclusive(profile / 'lock'):\n"
            "    (profile / 'state.json').write_text(json.dumps({'pid': os.getpid(), 'url': 'http://x/'}))\n"
            "    while True:\n"
            "        time.sleep(0.1)\n",
            str(profile),
        ],
        cwd=runner.ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while not (profile / "state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

        code = runner.main(["stop", "run"])

        assert code == 0
        assert stand_in.poll() == 0, "stop returned before the run had stopped"
        assert (profile / "stopped").read_text() == "asked"
    finally:
        stand_in.kill()
        stand_in.wait()


def test_make_stop_while_a_run_is_still_starting_says_so_and_stops_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "VAR", tmp_path)
    profile = tmp_path / "run"
    profile.mkdir()

    # The lock is held, but no pid is recorded yet (migrations are running, say).
    with exclusive(profile / "lock") as held:
        assert held
        code = runner.main(["stop", "run"])

    assert code == 1
    assert "still starting" in capsys.readouterr().err
