"""A pid file left behind by a crash or a reboot names a PID that another process may have now: stopping the
embedded servers must never signal that process."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory_admin.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedStack, pid_alive


@pytest.fixture
def stranger(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated program that happens to have the PID a stale pid file names."""
    process = subprocess.Popen(["sleep", "300"], cwd=tmp_path)
    yield process
    process.kill()
    process.wait()


def _stand_in_named(name: str, tmp_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """A process whose program is called `name` (a copy of `sleep`), running in `cwd`."""
    program = tmp_path / "bin" / name
    program.parent.mkdir(exist_ok=True)
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    return subprocess.Popen([str(program), "300"], cwd=cwd)


def test_stopping_postgres_with_a_stale_pid_file_leaves_the_process_that_reused_the_pid_alone(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    postgres.data_dir.mkdir(parents=True)
    (postgres.data_dir / "postmaster.pid").write_text(f"{stranger.pid}\n{postgres.data_dir}\n")

    postgres.stop(timeout=2)

    assert stranger.poll() is None, "stop signalled a process that is not the server"
    assert postgres.pid() is None
    assert not (postgres.data_dir / "postmaster.pid").exists()


def test_stopping_redis_with_a_stale_pid_file_leaves_the_process_that_reused_the_pid_alone(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")
    redis.root.mkdir(parents=True)
    redis.pid_file.write_text(f"{stranger.pid}\n")

    redis.stop(timeout=2)

    assert stranger.poll() is None, "stop signalled a process that is not the server"
    assert redis.pid() is None
    assert not redis.pid_file.exists()


def test_a_server_of_another_directory_is_not_taken_for_this_profiles_server(tmp_path: Path) -> None:
    # Programs with the servers' names, serving elsewhere (another checkout's var/, a system Redis).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other_postgres = _stand_in_named("postgres", tmp_path, elsewhere)
    other_redis = _stand_in_named("redis-server", tmp_path, elsewhere)
    stack = EmbeddedStack(tmp_path / "profile")
    stack.postgres.data_dir.mkdir(parents=True)
    stack.redis.root.mkdir(parents=True)
    (stack.postgres.data_dir / "postmaster.pid").write_text(f"{other_postgres.pid}\n")
    stack.redis.pid_file.write_text(f"{other_redis.pid}\n")
    try:
        stack.stop()

        assert other_postgres.poll() is None
        assert other_redis.poll() is None
    finally:
        for process in (other_postgres, other_redis):
            process.kill()
            process.wait()


def test_the_running_servers_are_still_recognised_and_stopped(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path / "stack", durable=False)
    try:
        stack.start()
        postgres_pid, redis_pid = stack.postgres.pid(), stack.redis.pid()
        assert postgres_pid is not None and redis_pid is not None

        stack.stop()

        assert stack.postgres.pid() is None and stack.redis.pid() is None
        assert not pid_alive(postgres_pid) and not pid_alive(redis_pid)
    finally:
        stack.stop()
