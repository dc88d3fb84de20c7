"""Suite `erasure`: forget a heavy person (1,000,000 events, 10,000 checkpoints, 100,000 memories) while the API
serves another tenant, against issue 7's targets.

It runs in a scratch database of its own (`bench_erasure`, created afresh on the bench profile's Postgres
and dropped at the end), because the verification scan reads every table: its time depends on everything
stored, and a scratch database makes it the person's data plus the other tenant's traffic, run after run.
There it starts
the web server and a Celery worker as `make run` does, and `bench.erasure_job` bulk-loads the person (see its
docstring). Then, while 8 agents of tenant `bench` append events through the API, the job files a request,
previews it, approves it (logical deletion and key destruction in one transaction) and waits for the worker's
purge and verification.

    python -m bench erasure
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from bench.cli import Bench
    from bench.figures import Figure

SCRATCH_DATABASE = "bench_erasure"
EVENTS = 1_000_000
MEMORIES = 100_000
CHECKPOINTS = 10_000
# The other tenant's load runs this long from approval on (the purge and verification should fit well inside).
LOAD_SECONDS = 60.0


def _scratch_url(database_url: str) -> str:
    return urlunsplit(urlsplit(database_url)._replace(path=f"/{SCRATCH_DATABASE}"))


def _recreate_scratch(database_url: str, *, create: bool = True) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")
        if create:
            connection.execute(f"CREATE DATABASE {SCRATCH_DATABASE}")


def _read_json_line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"bench.erasure_job ended early (exit {process.wait()}); see its output above")
    result: dict[str, Any] = json.loads(line)
    return result


def run(bench: Bench) -> dict[str, Any]:
    from bench.service import Server, prepare, say

    _recreate_scratch(bench.env["DATABASE_URL"])
    scratch = {**bench.env, "DATABASE_URL": _scratch_url(bench.env["DATABASE_URL"]), "LOG_LEVEL": "warning"}
    say(f"erasure: migrating {SCRATCH_DATABASE} and creating tenant bench's key there")
    key = prepare(scratch)
    spec = {"events": EVENTS, "memories": MEMORIES, "checkpoints": CHECKPOINTS, "worker": bench.with_worker}
    say(f"erasure: loading a person with {EVENTS:,} events, {CHECKPOINTS:,} checkpoints, {MEMORIES:,} memories")
    job = subprocess.Popen(
        [sys.executable, "-m", "bench.erasure_job", json.dumps(spec)],
        env=scratch,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    server = Server(workers=2, threads=4, with_worker=bench.with_worker)
    saved = bench.server, bench.key
    try:
        ready = _read_json_line(job)
        say(
            f"erasure: loaded in {ready['setup_seconds']} s; starting the web server 2x4 and a worker on "
            + SCRATCH_DATABASE
        )
        server.start(scratch)
        bench.server, bench.key = server, key
        say("erasure: baseline, 8 agents of another tenant appending events")
        bench.load("erasure_baseline_append_events_8", "append_events", 8, duration=10.0)
        load: dict[str, Any] = {}

        def background() -> None:
            load.update(
                bench.load("erasure_during_append_events_8", "append_events", 8, duration=LOAD_SECONDS, warmup=0.5)
            )

        thread = threading.Thread(target=background, name="erasure-background-load")
        thread.start()
        time.sleep(1.0)  # past the load's warm-up
        say("erasure: filing, previewing, approving; the worker purges and verifies")
        assert job.stdin is not None
        job.stdin.write("go\n")
        job.stdin.flush()
        done = _read_json_line(job)
        thread.join()
        job.wait(timeout=60)
    finally:
        bench.server, bench.key = saved
        server.stop()
        if job.poll() is None:
            job.kill()
            job.wait()
        # A gigabyte of erased person is no use to the next run, which starts afresh.
        _recreate_scratch(bench.env["DATABASE_URL"], create=False)
    return {"ready": ready, "done": done, "load_during": load}


def suite(bench: Bench) -> list[Figure]:
    from bench.figures import Figure

    result = run(bench)
    bench.details["erasure"] = result
    done = result["done"]
    baseline = bench.details["scenarios"].get("2x4", {}).get("erasure_baseline_append_events_8", {})
    base_ops = baseline.get("ops", {}).get("event_append", {})
    during = result["load_during"].get("ops", {}).get("event_append", {})
    purge_and_verify = (done["purge_seconds"] or 0) + (done["verify_seconds"] or 0)
    return [
        Figure("erasure_preview_s", "s", done["preview_seconds"]),
        Figure("erasure_logical_delete_s", "s", done["approve_seconds"], target="<= 1"),
        Figure("erasure_purge_s", "s", done["purge_seconds"]),
        Figure("erasure_purge_rows_per_s", "1/s", done["purge_rows_per_second"]),
        Figure("erasure_verify_s", "s", done["verify_seconds"]),
        Figure(
            "erasure_purge_and_verify_s",
            "s",
            purge_and_verify if done["status"] == "verified" else None,
            target="<= 60",
        ),
        Figure("erasure_approval_to_verified_s", "s", done["approval_to_verified_seconds"]),
        Figure(
            "erasure_other_tenant_event_append_p99_during",
            "ms",
            during.get("p99_ms"),
            "before the erasure",
            base_ops.get("p99_ms"),
        ),
        Figure(
            "erasure_other_tenant_event_appends_per_s_during",
            "1/s",
            during.get("per_second"),
            "before the erasure",
            base_ops.get("per_second"),
        ),
    ]
