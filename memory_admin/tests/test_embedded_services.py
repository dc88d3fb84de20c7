"""The module that starts, adopts and stops the embedded PostgreSQL and Redis."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest
import redis

from memory_admin.embedded import EmbeddedStack, exclusive, free_port, port_answers


@pytest.fixture
def stack(tmp_path: Path):
    root = tmp_path / "stack"
    stack = EmbeddedStack(root, durable=False)
    yield stack
    stack.stop()


def test_stack_starts_postgres_with_pgvector_and_redis_and_reports_their_urls(stack: EmbeddedStack) -> None:
    env = stack.start()

    with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
        conn.execute("create extension if not exists vector")
        version = conn.execute("select extversion from pg_extension where extname = 'vector'").fetchone()
        distance = conn.execute("select '[1,0]'::vector <-> '[0,1]'::vector").fetchone()
    assert version is not None and version[0].startswith("0.8")
    assert distance is not None and distance[0] == pytest.approx(2**0.5)
    assert redis.Redis.from_url(env["REDIS_URL"]).ping()


def test_second_start_adopts_the_running_servers_instead_of_starting_new_ones(stack: EmbeddedStack) -> None:
    first = stack.start()
    postgres_pid, redis_pid = stack.postgres.pid(), stack.redis.pid()

    second = EmbeddedStack(stack.root, durable=False).start()

    assert second == first
    assert (stack.postgres.pid(), stack.redis.pid()) == (postgres_pid, redis_pid)


def test_a_start_asking_for_other_settings_restarts_postgres_with_them_and_keeps_the_data(
    stack: EmbeddedStack,
) -> None:
    # The benchmark once adopted a scratch server that `runner env bench` had started without fsync, and
    # measured it as durable.
    url = stack.start()["DATABASE_URL"].replace("postgres://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table kept (value text)")
        conn.execute("insert into kept values ('still here')")
    scratch_pid = stack.postgres.pid()

    durable = EmbeddedStack(stack.root, durable=True, shared_buffers="64MB")
    url = durable.start()["DATABASE_URL"].replace("postgres://", "postgresql://")

    assert durable.postgres.pid() != scratch_pid
    with psycopg.connect(url) as conn:
        settings = conn.execute(
            "select current_setting('fsync'), current_setting('synchronous_commit'), "
            "pg_size_bytes(current_setting('shared_buffers'))"
        ).fetchone()
        assert settings == ("on", "on", 64 * 1024 * 1024)
        assert conn.execute("select value from kept").fetchone() == ("still here",)
    # Asking again for the same settings adopts it.
    durable_pid = durable.postgres.pid()
    EmbeddedStack(stack.root, durable=True, shared_buffers="64MB").start()
    assert durable.postgres.pid() == durable_pid


def test_stop_shuts_both_servers_down_and_a_restart_keeps_the_data(stack: EmbeddedStack) -> None:
    env = stack.start()
    url = env["DATABASE_URL"].replace("postgres://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table kept (value text)")
        conn.execute("insert into kept values ('still here')")
    postgres_port, redis_port = stack.postgres.port, stack.redis.port

    stack.stop()

    assert stack.postgres.pid() is None and stack.redis.pid() is None
    assert postgres_port is not None and not port_answers(postgres_port)
    assert redis_port is not None and not port_answers(redis_port)
    # The port may differ after a restart (another program may have taken it), so use the new URL.
    restarted = stack.start()["DATABASE_URL"].replace("postgres://", "postgresql://")
    with psycopg.connect(restarted) as conn:
        assert conn.execute("select value from kept").fetchone() == ("still here",)


def test_free_port_falls_back_to_another_port_when_the_preferred_one_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert free_port(busy) != busy
    assert free_port(busy) == busy


def test_exclusive_lock_refuses_a_second_holder_until_the_first_releases(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with exclusive(lock) as first:
        assert first is True
        with exclusive(lock) as second:
            assert second is False
    with exclusive(lock) as again:
        assert again is True


def test_a_first_start_killed_during_initdb_is_made_again_by_the_next_start(tmp_path: Path) -> None:
    # initdb writes PG_VERSION early: killed after that, it left a data directory that never started (and,
    # having a PG_VERSION, was never made again).
    import os
    import signal
    import subprocess
    import sys
    import time

    from memory_admin.embedded import EmbeddedPostgres

    root = tmp_path / "postgres"
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from memory_admin.embedded import EmbeddedPostgres\n"
            "EmbeddedPostgres(Path(sys.argv[1]), durable=False).start()\n",
            str(root),
        ],
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(root.glob("*/PG_VERSION")) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # well into initdb's work
        assert first.poll() is None, "initdb finished before it could be killed"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()

        postgres = EmbeddedPostgres(root, durable=False)
        url = postgres.start()

        with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        EmbeddedPostgres(root).stop()


def test_postgres_refusing_to_start_is_reported_with_the_end_of_its_log(stack: EmbeddedStack) -> None:
    from memory_admin.embedded import EmbeddedServiceError

    stack.postgres.start()
    stack.postgres.stop()
    (stack.postgres.data_dir / "PG_VERSION").write_text("17\n")  # as after an upgrade of the embedded server

    with pytest.raises(EmbeddedServiceError) as refused:
        stack.postgres.start()

    assert "PostgreSQL refused to start" in str(refused.value)
    assert "incompatible" in str(refused.value)  # the server's own reason, from postgres.log
