"""`make run`'s launcher: a second run while one holds the data directory says so and leaves it alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import World, logged_in
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
def _start_make_run(tmp_path: Path, **settings: str) -> tuple[subprocess.Popen[str], int]:
    """`make run` (the runner's `run`) under `tmp_path`, one web worker, with `settings` in its environment;
    ALLOWED_HOSTS as the runner makes it. Returns the process and its port."""
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
        **settings,
    }
    env.pop("ALLOWED_HOSTS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "memory_admin.runner", "run"],
        env=env,
        cwd=runner.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, port


def _banner(process: subprocess.Popen[str], deadline: float) -> str:
    """What the run prints up to its banner's last line (or until it stops or the deadline passes)."""
    banner = ""
    while "Ctrl-C stops everything" not in banner and time.monotonic() < deadline:
        line = process.stdout.readline() if process.stdout else ""
        if not line and process.poll() is not None:
            break
        banner += line
    return banner


def test_make_run_serves_the_dashboard_with_workers_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    import contextlib
    import os
    import signal

    import httpx
    import psutil

    process, port = _start_make_run(tmp_path)
    try:
        deadline = time.monotonic() + 90
        banner = _banner(process, deadline)
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


def test_a_second_ctrl_c_while_make_run_stops_still_stops_postgres_and_redis(tmp_path: Path) -> None:
    # The second signal raised inside the cleanup: the run exited with Postgres and Redis still running.
    import os
    import signal
    import subprocess
    import sys
    import time

    from memory_admin.embedded import EmbeddedStack, free_port

    env = {**os.environ, "MEMORY_VAR": str(tmp_path), "PORT": str(free_port()), "WEB_WORKERS": "1"}
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY_FILE"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "memory_admin.runner", "run"],
        env=env,
        cwd=runner.ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stack = EmbeddedStack(tmp_path / "run")
    try:
        printed = ""
        while "applying migrations" not in printed:  # Postgres and Redis are up
            line = process.stderr.readline() if process.stderr else ""
            assert line or process.poll() is None, printed
            printed += line
        while process.poll() is None:  # Ctrl-C, and again and again while it stops
            process.send_signal(signal.SIGINT)
            time.sleep(0.1)
        assert not stack.postgres.is_running() and not stack.redis.is_running()
        assert not (tmp_path / "run" / "state.json").exists()
    finally:
        process.kill()
        process.wait()
        stack.stop()


def test_empty_web_workers_and_threads_mean_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # `WEB_WORKERS=` passed the start-up check, then stopped `make run` with a ValueError after the migrations.
    monkeypatch.setenv("WEB_WORKERS", "")
    monkeypatch.setenv("WEB_THREADS", " ")

    argv = runner.web_argv("127.0.0.1", 8000)

    assert argv[argv.index("--workers") + 1] == str(runner.DEFAULT_WEB_WORKERS)
    assert argv[argv.index("--blocking-threads") + 1] == str(runner.DEFAULT_WEB_THREADS)


@pytest.mark.django_db(transaction=True)
def test_make_run_on_ipv6_loopback_answers_at_the_url_it_prints(tmp_path: Path) -> None:
    # HOST=::1 printed http://::1:PORT/ and put `::1` (not `[::1]`) in ALLOWED_HOSTS: every request was a 400.
    import os
    import signal

    import httpx

    process, port = _start_make_run(tmp_path, HOST="::1")
    try:
        banner = _banner(process, time.monotonic() + 90)
        assert f"Dashboard:  http://[::1]:{port}/" in banner, banner
        assert httpx.get(f"http://[::1]:{port}/login/").status_code == 200
    finally:
        os.kill(process.pid, signal.SIGINT)
        process.communicate(timeout=60)


def test_make_run_on_every_interface_says_that_allowed_hosts_must_name_the_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hosts = runner.allowed_hosts("0.0.0.0", "127.0.0.1")  # noqa: S104

    assert hosts.split(",") == ["127.0.0.1", "localhost", "[::1]"]
    assert "set ALLOWED_HOSTS to the names and addresses other machines use" in capsys.readouterr().err


def test_runner_env_prints_lines_a_shell_reads_back_whatever_the_urls_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Printed unquoted, the `&` of a DATABASE_URL's query sent the rest of the line to the background.
    import subprocess

    monkeypatch.setattr(runner, "VAR", tmp_path)
    database_url = "postgres://me:p%20w@db.example:5432/memory?sslmode=require&application_name=a b"
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/0")

    assert runner.print_env("scratch") == 0
    printed = capsys.readouterr().out
    read_back = subprocess.run(
        ["bash", "-c", f'{printed}\nprintf "%s\\n" "$DATABASE_URL" "$REDIS_URL"'],
        env={"PATH": "/usr/bin:/bin"},  # nothing inherited: only what the printed lines set
        capture_output=True,
        text=True,
    )

    assert read_back.stdout.splitlines() == [database_url, "redis://cache.example:6379/0"], read_back.stderr


@pytest.mark.django_db(transaction=True)
def test_on_every_ipv6_interface_local_ipv4_callers_are_scraped_and_reach_the_websocket_server() -> None:
    # HOST=:: listens dual-stack: a scrape from 127.0.0.1 came as ::ffff:127.0.0.1, not loopback, and was a 403;
    # uvicorn's socket on :: was IPv6-only, so the ws://127.0.0.1 the page was told was refused.
    import httpx

    from memory_admin.embedded import free_port
    from tests.servers import ServerProcess, running

    port = free_port()
    ws_port = next(candidate for candidate in iter(free_port, None) if candidate != port)
    web = ServerProcess(runner.web_argv("::", port, workers=1, threads=1), port)
    websockets = ServerProcess(runner._uvicorn_argv("::", ws_port), ws_port)  # started once 127.0.0.1 answers
    with running(web), running(websockets):
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics")
        ipv6 = httpx.get(f"http://[::1]:{ws_port}/healthz")

    assert scrape.status_code == 200, scrape.text
    assert ipv6.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["0.0.0.0", "::"])  # noqa: S104
def test_on_every_interface_the_page_leaves_the_websocket_host_to_the_browser(world: World, host: str) -> None:
    # The page said ws://127.0.0.1:PORT, so a browser on another machine opened a socket to itself.
    from django.test import override_settings

    with override_settings(WEBSOCKET_URL=runner.websocket_url(host, "127.0.0.1", 8001)):
        page = logged_in(world.support).get("/sessions/", HTTP_HOST="localhost")

    assert 'data-websocket-url="ws://{hostname}:8001"' in page.content.decode()
    assert runner.websocket_url("127.0.0.1", "127.0.0.1", 8001) == "ws://127.0.0.1:8001"
    assert runner.websocket_url("::1", "::1", 8001) == "ws://[::1]:8001"
