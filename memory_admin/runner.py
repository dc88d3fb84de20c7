"""`make run` and `make test`: bring up the layers, then the service or the checks.

    python -m memory_admin.runner run       # embedded servers (unless URLs are set), migrate, demo data, serve
    python -m memory_admin.runner test ...  # embedded test servers, then ruff, mypy, migrations check, pytest
    python -m memory_admin.runner env       # start the test servers and print their environment (for a shell)
    python -m memory_admin.runner stop run|test  # stop a running `make run` (from another shell), or the servers

Serving topology for one machine: granian's WSGI workers serve every HTTP request (the API is sync Django
code, several times cheaper under WSGI than under an ASGI server; granian's HTTP handling is in Rust, a
fraction of a pure-Python server's per-request cost), uvicorn serves only the dashboard's WebSockets on the
next port, and a Celery worker and beat run the background jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from memory_admin.embedded import (
    EmbeddedServiceError,
    EmbeddedStack,
    exclusive,
    pid_alive,
    port_answers,
    process_start,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
# Where each profile keeps its data (var/run, var/test, …); MEMORY_VAR moves it, e.g. for tests of `run`.
VAR = Path(os.environ.get("MEMORY_VAR", str(ROOT / "var")))
BIN = Path(sys.executable).parent


def _say(message: str) -> None:
    print(f"[memory] {message}", file=sys.stderr, flush=True)


class StartupError(Exception):
    """`make run` cannot start as configured; the message says why and what to change."""


def _int_setting(name: str, default: int, *, minimum: int, maximum: int, what: str) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StartupError(f"{name}={raw!r} is not {what}") from None
    if not minimum <= value <= maximum:
        raise StartupError(f"{name}={value} is not {what}")
    return value


def _count_setting(name: str, default: int) -> int:
    """WEB_WORKERS, WEB_THREADS: checked before anything starts, read again by web_argv (empty: the default)."""
    return _int_setting(name, default, minimum=1, maximum=1024, what="a positive whole number")


def _secret_file(profile_dir: Path) -> Path:
    path = profile_dir / "secret_key"
    # An empty file (a full disk, an interrupted first run) has never signed anything: replace it.
    if not path.exists() or not path.read_text().strip():
        profile_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path


@dataclass(frozen=True)
class Profile:
    """How a profile's embedded Postgres runs, whichever command starts it (`run`, `test`, `env`, the bench)."""

    durable: bool
    shared_buffers: str = "256MB"


PROFILES = {
    # Only the demo's data is worth crash durability; tests throw theirs away.
    "run": Profile(durable=True),
    "test": Profile(durable=False),
    # Durable like `run`, so that an append pays for a real commit; a buffer pool that holds the memories
    # suite's HNSW index (~2 GB for a million global vectors), as a production server on this machine would.
    "bench": Profile(durable=True, shared_buffers="4GB"),
}
SCRATCH = Profile(durable=False)


def service_environment(profile: str) -> dict[str, str]:
    """Start what DATABASE_URL / REDIS_URL do not already point at; return the environment for Django.

    Postgres runs as PROFILES says (other profile names are scratch); one started otherwise is restarted.
    """
    profile_dir = VAR / profile
    env = dict(os.environ)
    settings = PROFILES.get(profile, SCRATCH)
    stack = EmbeddedStack(profile_dir, durable=settings.durable, shared_buffers=settings.shared_buffers)
    needs_db = not env.get("DATABASE_URL")
    needs_redis = not env.get("REDIS_URL")
    if needs_db or needs_redis:
        _say(
            "starting embedded "
            + " and ".join(name for name, needed in (("PostgreSQL", needs_db), ("Redis", needs_redis)) if needed)
            + f" under var/{profile}/"
        )
    env.update(stack.start(database=needs_db, cache=needs_redis))
    env.setdefault("DJANGO_SETTINGS_MODULE", "memory_admin.settings")
    if not env.get("SECRET_KEY"):
        env.setdefault("SECRET_KEY_FILE", str(_secret_file(profile_dir)))
    if not env.get("ARCHIVE_DIR"):
        env["ARCHIVE_DIR"] = str(_archive_dir(profile, profile_dir))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _archive_dir(profile: str, profile_dir: Path) -> Path:
    """The profile's own archive storage, as it has its own database: a profile's archives are none of another's
    business, and `clean` removes them with the rest of its data. (An ARCHIVE_STORAGE_BACKEND set in the
    environment is used instead, as it is given.)"""
    path = profile_dir / "archive"
    # Every profile used to share var/archive; the archives in it that matter are `make run`'s (the others
    # throw their data away), which its archived sessions are read back from.
    shared = VAR / "archive"
    if profile == "run" and shared.is_dir() and not path.exists():
        profile_dir.mkdir(parents=True, exist_ok=True)
        shared.rename(path)
        _say("moved the archives in var/archive/ to var/run/archive/, where `make run` keeps them now")
    return path


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, check=True)


# --- make run -------------------------------------------------------------------------------------------


class Supervisor:
    """Starts the service's processes, stops all of them when one dies or on Ctrl-C.

    Each child is recorded in the profile's state file (PID, process group, start time) as soon as it starts,
    so that when this process is killed outright (kill -9, OOM killer) the next `run` or `stop` can find the
    children it left behind, and tell them from unrelated processes that got their PIDs since.
    """

    def __init__(self, profile_dir: Path | None = None) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.profile_dir = profile_dir
        self.state: dict[str, object] = {"pid": os.getpid(), "start": process_start(os.getpid())}

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        # Own process group: Ctrl-C reaches only this supervisor, which stops the children in order.
        process = subprocess.Popen(list(argv), env=env, cwd=ROOT, start_new_session=True)
        self.children.append((name, process))
        self.record()

    def record(self, **state: object) -> None:
        """Write the state file: this process, `state` (the URL), and every child started so far."""
        self.state.update(state)
        if self.profile_dir is None:
            return
        children = [
            {"name": name, "pid": process.pid, "pgid": process.pid, "start": process_start(process.pid)}
            for name, process in self.children
        ]
        _write_state(self.profile_dir, {**self.state, "children": children})

    def wait(self) -> int:
        while True:
            for name, process in self.children:
                code = process.poll()
                if code is not None:
                    _say(f"{name} exited with status {code}; stopping the rest")
                    return code or 1
            time.sleep(0.5)

    def stop(self, timeout: float = 15) -> None:
        for _, process in reversed(self.children):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in reversed(self.children):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _say(f"{name} did not stop in time; killing it")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def run() -> int:
    try:
        return _run()
    except StartupError as error:
        _say(str(error))
        return 2


def _run() -> int:
    profile_dir = VAR / "run"
    host = os.environ.get("HOST", "127.0.0.1")
    port = _int_setting("PORT", 8000, minimum=1, maximum=65535, what="a port number (1-65535)")
    ws_port = _int_setting(
        "WEBSOCKET_PORT", port + 1 if port < 65535 else port - 1, minimum=1, maximum=65535, what="a port number"
    )
    for name in ("WEB_WORKERS", "WEB_THREADS"):
        _count_setting(name, 1)
    # A server bound to every interface is reached locally through loopback.
    display_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    with exclusive(profile_dir / "lock") as acquired:
        if not acquired:
            state = _read_state(profile_dir)
            _say(
                f"already running (pid {state.get('pid', '?')}) at {state.get('url', '?')}; "
                "stop it with Ctrl-C there, or with `make stop`"
            )
            return 1
        # An earlier run killed outright left its web server, workers and beat running (a second beat would
        # send every periodic task twice, the old web server holds the port).
        stop_leftovers(profile_dir)
        for wanted in (port, ws_port):
            if port_answers(wanted, display_host):
                _say(f"port {wanted} is taken by another program; choose others with PORT=... make run")
                return 1
        supervisor = Supervisor(profile_dir)
        stopping = False

        def on_signal(signum: int, frame: object) -> None:
            nonlocal stopping
            # Once stopping, a second Ctrl-C (or `kill`) must not cut the cleanup short: raised inside it, it
            # left Postgres and Redis running and the state file behind.
            if stopping:
                return
            stopping = True
            raise KeyboardInterrupt

        # Installed before anything starts: a shell may start us with SIGINT ignored (a background job), and
        # Ctrl-C, `kill` and a closed terminal must all stop every process this run started, also while the
        # servers start or the migrations run.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, on_signal)
        code = 1
        try:
            supervisor.record()
            code = _serve(supervisor, profile_dir, host, display_host, port, ws_port)
        except KeyboardInterrupt:
            code = 0
            _say("stopping")
        except subprocess.CalledProcessError as error:
            step = " ".join(str(part) for part in error.cmd[2:4])
            _say(f"`{step}` failed (exit {error.returncode}, its output is above); stopping what was started")
        except (EmbeddedServiceError, OSError) as error:
            _say(f"could not start: {error}; stopping what was started")
        finally:
            stopping = True
            supervisor.stop()
            EmbeddedStack(profile_dir).stop()
            (profile_dir / "state.json").unlink(missing_ok=True)
        _say("stopped; `make run` again reuses the data in var/run/")
        return code


def _serve(supervisor: Supervisor, profile_dir: Path, host: str, display_host: str, port: int, ws_port: int) -> int:
    env = service_environment("run")
    env.setdefault("LOG_FORMAT", "console")
    if "ALLOWED_HOSTS" not in env:
        env["ALLOWED_HOSTS"] = allowed_hosts(host, display_host)
    env.setdefault("WEBSOCKET_URL", websocket_url(host, display_host, ws_port))
    # Counters of every web and worker process, summed at scrape time (memory_admin.metrics).
    # prometheus_client's multiprocess mode wants the directory emptied before the processes start.
    metrics_dir = Path(env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(profile_dir / "prometheus")))
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    _say("applying migrations")
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "seed_demo", "--credentials-file", str(profile_dir / "demo-credentials.json"))
    supervisor.spawn("web", web_argv(host, port), env)
    supervisor.spawn("websockets", _uvicorn_argv(host, ws_port), env)
    supervisor.spawn(
        "worker", [str(BIN / "celery"), "-A", "memory_admin", "-q", "worker", "-l", "warning", "-c", "2"], env
    )
    supervisor.spawn(
        "beat",
        [
            str(BIN / "celery"),
            "-A",
            "memory_admin",
            "beat",
            "-l",
            "warning",
            "-s",
            str(profile_dir / "celerybeat-schedule"),
        ],
        env,
    )
    url = f"http://{url_host(display_host)}:{port}/"
    supervisor.record(url=url)
    _wait_for_http(display_host, port)
    _print_banner(url, profile_dir / "demo-credentials.json")
    return supervisor.wait()


def url_host(host: str) -> str:
    """`host` as a URL and a Host header name it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def websocket_url(host: str, display_host: str, ws_port: int) -> str:
    """WEBSOCKET_URL for `make run` when none is set. Bound to every interface, it is reached by names and
    addresses this machine cannot know (see `allowed_hosts`): the page's browser puts in the host it reached
    the page by (static/js/live.js), where 127.0.0.1 sent a remote browser to its own machine."""
    if host in ("0.0.0.0", "::"):  # noqa: S104
        return f"ws://{{hostname}}:{ws_port}"
    return f"ws://{url_host(display_host)}:{ws_port}"


def allowed_hosts(host: str, display_host: str) -> str:
    """ALLOWED_HOSTS for `make run` when none is set: the names it is reached by on this machine.

    Bound to every interface (HOST=0.0.0.0 or ::), other machines reach it by names and addresses it cannot know
    for sure (a NAT, a DNS name, a proxy), and guessing would let a forged Host through: it says so instead.
    """
    if host in ("0.0.0.0", "::"):  # noqa: S104
        _say(
            f"HOST={host} listens on every interface, but only requests for localhost are answered: set "
            "ALLOWED_HOSTS to the names and addresses other machines use (ALLOWED_HOSTS=memory.example.com,192.0.2.10)"
        )
    names = [url_host(name) for name in (display_host, host) if name not in ("0.0.0.0", "::")]  # noqa: S104
    return ",".join(dict.fromkeys([*names, "localhost", "127.0.0.1", "[::1]"]))


# One worker process per core and one more, two threads each (measured on this 2-core machine with bench/:
# bench/README.md has the sweep). A request spends part of its time waiting on Postgres' commit and on Redis;
# a second thread fills those waits, while more threads per process cost more in GIL hand-offs than they
# win (2x4 served ~15 % fewer checkpoint saves than 3x2, 3x1 a fifth fewer event appends at 32 sessions).
# Deployments whose requests wait on a remote embedder can raise WEB_THREADS.
DEFAULT_WEB_WORKERS = (os.cpu_count() or 1) + 1
DEFAULT_WEB_THREADS = 2


def web_argv(host: str, port: int, *, workers: int | None = None, threads: int | None = None) -> list[str]:
    """The web server's command line: granian's WSGI workers on memory_admin.wsgi (the hot lane, then Django)."""
    return [
        str(BIN / "granian"),
        "--interface",
        "wsgi",
        "memory_admin.wsgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers or _count_setting("WEB_WORKERS", DEFAULT_WEB_WORKERS)),
        "--blocking-threads",
        str(threads or _count_setting("WEB_THREADS", DEFAULT_WEB_THREADS)),
        "--runtime-mode",
        "st",
        # HTTP/1.1 only: no HTTP/2 detection on every connection (clients speak HTTP/1.1 to the service; a
        # TLS-terminating proxy in front speaks whatever it likes to clients).
        "--http",
        "1",
        "--no-ws",
        "--respawn-failed-workers",
        "--workers-kill-timeout",
        "10",
        "--log-level",
        "warning",
        *(["--access-log"] if os.environ.get("ACCESS_LOG") else []),
    ]


def _uvicorn_argv(host: str, port: int) -> list[str]:
    return [
        str(BIN / "uvicorn"),
        "memory_admin.asgi:application",
        "--host",
        # asyncio makes a socket bound to :: IPv6-only (granian's accepts IPv4 too), and the page is told
        # ws://127.0.0.1: an empty host has it listen on 0.0.0.0 and :: both.
        "" if host == "::" else host,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def _wait_for_http(host: str, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not port_answers(port, host):
        time.sleep(0.2)


def _print_banner(url: str, credentials_file: Path) -> None:
    credentials = json.loads(credentials_file.read_text())
    lines = [
        "",
        f"  Dashboard:  {url}",
        f"  API docs:   {url}api/docs/",
        "  Staff logins (username / password):",
        *[
            f"    {role:<11} {login['username']} / {_shown_password(login)}"
            for role, login in credentials["staff"].items()
        ],
        f"  Demo agent API key (tenant '{credentials['tenant']}'):",
        f"    {credentials['api_key']}",
        f"  Try: curl -H 'Authorization: Bearer {credentials['api_key']}' {url}api/v1/whoami",
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _shown_password(login: dict[str, object]) -> str:
    if login.get("changed"):
        return f"(changed since; `manage.py changepassword {login['username']}` sets another)"
    return str(login["password"])


def stop(profile: str, *, timeout: float = 60) -> int:
    """Stop a profile's service from another shell: a running `make run` is asked to stop (it stops its
    processes, then its servers, as on Ctrl-C); servers that nothing runs on (`runner env`) are stopped."""
    profile_dir = VAR / profile
    with exclusive(profile_dir / "lock") as free:
        if free:
            # Nothing runs the profile: stop what a run that was killed outright left behind, then the servers.
            stop_leftovers(profile_dir)
            EmbeddedStack(profile_dir).stop()
            return 0
    state = _read_state(profile_dir)
    pid = state.get("pid")
    if not isinstance(pid, int) or not _is_process(pid, state.get("start")):
        _say(f"var/{profile}/ is in use by a command that is still starting (or by `make test`); try again")
        return 1
    _say(f"asking the running `make run` (pid {pid}) to stop")
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not pid_alive(pid), timeout=timeout, what=f"`make run` (pid {pid}) to stop")
    except EmbeddedServiceError as error:
        _say(str(error))
        return 1
    return 0


def _is_process(pid: int, start: object) -> bool:
    """Whether `pid` is still the process that the state file recorded (not a later one with its PID).

    A state file written before start times were recorded has none; its PID is then taken on trust."""
    if start is None:
        return pid_alive(pid)
    return pid_alive(pid) and process_start(pid) == start


def stop_leftovers(profile_dir: Path, *, timeout: float = 20) -> list[str]:
    """Stop the processes (each with its process group) that a run of this profile started and left running
    when it was killed outright; return their names. Call it only while holding the profile's lock, so that a
    live run's processes are never touched. A recorded PID is acted on only if the process that has it now
    started when the recorded one did: a PID reused by an unrelated program is left alone."""
    state = _read_state(profile_dir)
    children = state.get("children")
    groups: dict[int, tuple[str, object]] = {}
    for child in children if isinstance(children, list) else []:
        if not isinstance(child, dict):
            continue
        pid, pgid, start = child.get("pid"), child.get("pgid"), child.get("start")
        if isinstance(pid, int) and isinstance(pgid, int) and start and _is_process(pid, start):
            groups[pgid] = (str(child.get("name")), start)
            _say(f"stopping the {child.get('name')} (pid {pid}) that an earlier run left running")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_is_process(pgid, start) for pgid, (_, start) in groups.items()):
        time.sleep(0.1)
    for pgid, (name, start) in groups.items():
        if _is_process(pgid, start):
            _say(f"the {name} (pid {pgid}) did not stop in time; killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
    (profile_dir / "state.json").unlink(missing_ok=True)
    return [name for name, _ in groups.values()]


def _write_state(profile_dir: Path, state: dict[str, object]) -> None:
    # Written whole or not at all: `stop` in another shell may read it at any moment.
    temporary = profile_dir / "state.json.tmp"
    temporary.write_text(json.dumps(state))
    temporary.replace(profile_dir / "state.json")


def _read_state(profile_dir: Path) -> dict[str, object]:
    try:
        state: dict[str, object] = json.loads((profile_dir / "state.json").read_text())
        return state
    except (OSError, ValueError):
        return {}


# --- make test ------------------------------------------------------------------------------------------


def test(pytest_args: Sequence[str]) -> int:
    profile_dir = VAR / "test"
    with exclusive(profile_dir / "lock") as acquired:
        if not acquired:
            _say("another `make test` is running on var/test/; wait for it to finish")
            return 1
        env = service_environment("test")
        env.setdefault("LOG_FORMAT", "console")
        env.setdefault("LOG_LEVEL", "warning")
        try:
            steps: list[tuple[str, list[str]]] = [
                ("ruff check", [str(BIN / "ruff"), "check", "."]),
                ("ruff format --check", [str(BIN / "ruff"), "format", "--check", "."]),
                ("mypy", [str(BIN / "mypy"), "."]),
                ("makemigrations --check", [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"]),
                ("pytest", [str(BIN / "pytest"), *pytest_args]),
            ]
            for name, argv in steps:
                _say(name)
                code = subprocess.run(argv, env=env, cwd=ROOT, check=False).returncode
                if code != 0:
                    _say(f"{name} failed (exit {code})")
                    return code
            return 0
        finally:
            if not os.environ.get("KEEP_SERVICES"):
                EmbeddedStack(profile_dir).stop()


def print_env(profile: str) -> int:
    env = service_environment(profile)
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY_FILE", "ARCHIVE_DIR"):
        if env.get(name):
            print(f"export {name}={shlex.quote(env[name])}")
    return 0


def main(argv: Sequence[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    command, rest = argv[0], list(argv[1:])
    if command == "run":
        return run()
    if command == "test":
        return test(rest)
    if command == "env":
        return print_env(rest[0] if rest else "test")
    if command == "stop":
        return stop(rest[0] if rest else "run")
    if command == "clean":
        for profile in rest or ["test"]:
            with exclusive(VAR / profile / "lock") as free:
                if not free:
                    _say(f"var/{profile}/ is in use (a run or a test); stop it first")
                    return 1
                stop_leftovers(VAR / profile)
            EmbeddedStack(VAR / profile).stop()
            shutil.rmtree(VAR / profile, ignore_errors=True)
        return 0
    print(f"unknown command {command!r}\n{__doc__}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
