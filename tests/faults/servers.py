"""Servers that a fault test may break: a Redis and a PostgreSQL of its own (never the suite's shared ones) that
it can stop and start again on the same port."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memory_admin.embedded import DATABASE_NAME, LOOPBACK, EmbeddedPostgres, EmbeddedRedis, free_port, wait_until


class ThrowawayRedis:
    """A Redis server on a fixed loopback port, kept in the foreground so the test owns its process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(EmbeddedRedis.binary()),
                "--bind",
                LOOPBACK,
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        probe = EmbeddedRedis(self.directory)
        probe.port_file.write_text(f"{self.port}\n")
        wait_until(probe.ping, timeout=15, what=f"the throwaway Redis on port {self.port}")

    def stop(self) -> None:
        """Stop it hard (SIGKILL): the clients see their connections die, as when a Redis host goes away."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@contextmanager
def throwaway_redis(directory: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ThrowawayPostgres:
    """A PostgreSQL cluster of one test, holding a copy of the test database, that the test may stop."""

    def __init__(self, directory: Path) -> None:
        self.cluster = EmbeddedPostgres(directory, durable=False)

    @property
    def url(self) -> str:
        return self.cluster.url

    def start(self) -> None:
        self.cluster.start()

    def stop(self) -> None:
        self.cluster.stop()

    def copy_database(self, settings_dict: dict[str, Any]) -> None:
        """Copy the test database (schema and rows) into this cluster's database."""
        source = (
            f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD']}@{settings_dict['HOST']}:"
            f"{settings_dict['PORT']}/{settings_dict['NAME']}"
        )
        dump = subprocess.run(
            [str(EmbeddedPostgres.bin_dir() / "pg_dump"), "--no-owner", "--no-privileges", source],
            capture_output=True,
            check=True,
        )
        subprocess.run(
            [str(EmbeddedPostgres.bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", self.url],
            input=dump.stdout,
            capture_output=True,
            check=True,
        )

    def query(self, sql: str) -> str:
        return self.cluster.psql(sql, database=DATABASE_NAME)
