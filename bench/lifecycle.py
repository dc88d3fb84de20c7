"""Suite `lifecycle`: the Postgres storage of one 10,000-step agent run, without and with the lifecycle policies.

Each step of the run appends two events (the agent's message and a node transition) and saves a checkpoint of a
state carrying the last 20 messages; snapshots are taken every EVENT_SNAPSHOT_EVERY events as the worker would
(the tasks run inline here). Then, with the default policies:

- **without policies**: everything the run wrote stays;
- **with policies, 40 days later**: event archival (older than 30 days, folded by a snapshot, outside the hot
  context window) and checkpoint retention (older than 30 days, keep the latest 5) have run;
- **archived, 100 days idle**: session archival has run too (the session row and its head snapshot stay).

Bytes are `pg_total_relation_size` (heap, TOAST and indexes) of the tables the run writes, after `VACUUM FULL`,
in a scratch database of its own (`bench_lifecycle`, dropped and created afresh on the bench profile's
Postgres), so nothing else is counted. The archive objects (gzip JSON, payloads as stored) are reported apart.

    python -m bench lifecycle                       # as a suite of `make bench`
    python -m bench.lifecycle measure [--steps N]   # the measurement alone, against DATABASE_URL (JSON out)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from bench.cli import Bench
    from bench.figures import Figure

STEPS = 10_000
SCRATCH_DATABASE = "bench_lifecycle"
TABLES = [
    "sessions_app_agentsession",
    "sessions_app_event",
    "sessions_app_eventsnapshot",
    "sessions_app_operation",
    "checkpoints_app_checkpoint",
    "checkpoints_app_checkpointhead",
]


# --- the measurement (runs in a process of its own, against the scratch database) ------------------------


def _sizes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"VACUUM FULL {table}")
        cursor.execute("SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)", [TABLES])
        return dict(cursor.fetchall())


def measure(steps: int) -> dict[str, Any]:
    import django

    django.setup()
    from datetime import timedelta

    from django.utils import timezone

    from checkpoints_app.models import Checkpoint
    from checkpoints_app.services import save_checkpoint
    from lifecycle_app import jobs
    from lifecycle_app.models import ArchiveSegment
    from sessions_app.models import AgentSession, Event, EventSnapshot
    from sessions_app.services import NewEvent, append_events, create_session
    from tenants_app.models import Tenant

    def rows() -> dict[str, int]:
        return {
            "events": Event.objects.count(),
            "snapshots": EventSnapshot.objects.count(),
            "checkpoints": Checkpoint.objects.count(),
        }

    empty = _sizes()
    tenant = Tenant.objects.create(name="lifecycle-measure")
    session, _ = create_session(tenant=tenant, user_id="measure-user", session_id="run-10k")
    messages: list[dict[str, str]] = []
    started = time.perf_counter()
    for step in range(1, steps + 1):
        message = {"role": "assistant" if step % 2 else "user", "content": f"step {step}: " + "lorem ipsum " * 8}
        messages = [*messages, message][-20:]
        append_events(
            session=session,
            events=[NewEvent("MESSAGE_ADDED", message), NewEvent("NODE_TRANSITION", {"node": f"node-{step % 5}"})],
        )
        save_checkpoint(session=session, node_id=f"node-{step % 5}", state={"messages": messages, "step": step})
    write_seconds = time.perf_counter() - started
    without = _sizes()
    rows_without = rows()

    def age(days: int) -> None:
        when = timezone.now() - timedelta(days=days)
        AgentSession.objects.filter(pk=session.pk).update(last_activity_at=when, updated_at=when)
        Event.objects.filter(session=session).update(created_at=when)
        Checkpoint.objects.filter(session=session).update(created_at=when)

    age(40)
    events_run = jobs.archive_events(dry_run=False, triggered_by="bench")
    checkpoints_run = jobs.apply_checkpoint_retention(dry_run=False, triggered_by="bench")
    with_policies = _sizes()
    rows_with = rows()
    archive_with = sum(ArchiveSegment.objects.values_list("stored_bytes", flat=True))

    age(100)
    sessions_run = jobs.archive_sessions(dry_run=False, triggered_by="bench")
    archived = _sizes()
    rows_archived = rows()
    archive_archived = sum(ArchiveSegment.objects.values_list("stored_bytes", flat=True))

    def total(sizes: dict[str, int]) -> int:
        return sum(sizes[table] - empty[table] for table in TABLES)

    return {
        "steps": steps,
        "write_seconds": round(write_seconds, 1),
        "tables": {table: without[table] - empty[table] for table in TABLES},
        "tables_with_policies": {table: with_policies[table] - empty[table] for table in TABLES},
        "tables_archived": {table: archived[table] - empty[table] for table in TABLES},
        "bytes_without": total(without),
        "bytes_with_policies": total(with_policies),
        "bytes_archived": total(archived),
        "rows_without": rows_without,
        "rows_with_policies": rows_with,
        "rows_archived": rows_archived,
        "archive_bytes_with_policies": archive_with,
        "archive_bytes_archived": archive_archived,
        "runs": {
            "event_archival": events_run.counts,
            "checkpoint_retention": checkpoints_run.counts,
            "session_archival": sessions_run.counts,
        },
    }


# --- the suite ------------------------------------------------------------------------------------------


def _scratch_url(database_url: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path=f"/{SCRATCH_DATABASE}"))


def _recreate_scratch(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {SCRATCH_DATABASE}")


def run_measurement(env: dict[str, str], steps: int) -> dict[str, Any]:
    """Create the scratch database, migrate it and measure there in a child process; its JSON result."""
    from bench.service import manage, say

    _recreate_scratch(env["DATABASE_URL"])
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as archive_dir:
        scratch = {
            **env,
            "DATABASE_URL": _scratch_url(env["DATABASE_URL"]),
            "ARCHIVE_DIR": archive_dir,
            "ARCHIVE_STORAGE_BACKEND": "",
            # Snapshot tasks run inline, as a worker would run them right after each append.
            "CELERY_TASK_ALWAYS_EAGER": "true",
            "LOG_LEVEL": "warning",
        }
        say(f"lifecycle: migrating {SCRATCH_DATABASE}")
        manage(scratch, "migrate", "--noinput", "-v", "0")
        say(f"lifecycle: writing a {steps:,}-step run, then applying the policies")
        output = subprocess.run(
            [sys.executable, "-m", "bench.lifecycle", "measure", "--steps", str(steps)],
            env=scratch,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def suite(bench: Bench) -> list[Figure]:
    from bench.figures import Figure

    result = run_measurement(bench.env, STEPS)
    bench.details["lifecycle"] = result
    without = result["bytes_without"]
    mb = 1_000_000
    return [
        Figure("lifecycle_10k_pg_mb_without_policies", "MB", without / mb),
        Figure(
            "lifecycle_10k_pg_mb_with_policies",
            "MB",
            result["bytes_with_policies"] / mb,
            anchor="without policies",
            anchor_value=without / mb,
        ),
        Figure(
            "lifecycle_10k_pg_mb_archived",
            "MB",
            result["bytes_archived"] / mb,
            anchor="without policies",
            anchor_value=without / mb,
        ),
        Figure("lifecycle_10k_archive_mb", "MB", result["archive_bytes_archived"] / mb),
        Figure("lifecycle_10k_write_s", "s", result["write_seconds"]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["measure"])
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memory_admin.settings")
    print(json.dumps(measure(args.steps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
