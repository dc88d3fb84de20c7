"""Measure the Postgres storage of one 10,000-step agent run, before and after the lifecycle policies.

Each step appends two events (the agent's message and a node transition) and saves a checkpoint of a state that
carries the last 20 messages. The run is then made 40 days old and event archival and checkpoint retention run
with the default policies. Sizes are pg_total_relation_size of the tables after VACUUM FULL, minus what the
tables held before the run. Run it against a scratch database (it creates a tenant named lifecycle-measure):

    eval $(.venv/bin/python -m memory_admin.runner env <profile>)
    .venv/bin/python manage.py migrate && .venv/bin/python scripts/lifecycle_storage.py [steps]
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memory_admin.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from checkpoints_app.models import Checkpoint  # noqa: E402
from checkpoints_app.services import save_checkpoint  # noqa: E402
from lifecycle_app import jobs  # noqa: E402
from lifecycle_app.models import ArchiveSegment  # noqa: E402
from sessions_app.models import Event, EventSnapshot  # noqa: E402
from sessions_app.selectors import rebuild_state, save_snapshot  # noqa: E402
from sessions_app.services import NewEvent, append_events, create_session  # noqa: E402
from tenants_app.models import Tenant  # noqa: E402

TABLES = ["sessions_app_event", "sessions_app_eventsnapshot", "checkpoints_app_checkpoint"]


def sizes() -> dict[str, int]:
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"VACUUM FULL {table}")
        cursor.execute("SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)", [TABLES])
        return dict(cursor.fetchall())


def main(steps: int) -> None:
    before = sizes()
    tenant, _ = Tenant.objects.get_or_create(name="lifecycle-measure")
    session, _ = create_session(tenant=tenant, user_id="measure-user", session_id=f"run-{int(time.time())}")
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
    session.refresh_from_db()
    # The snapshot worker's job (Celery may not be running here): the fold every EVENT_SNAPSHOT_EVERY events.
    every = 100
    for version in range(every, session.head_version + 1, every):
        if not EventSnapshot.objects.filter(session=session, version=version).exists():
            save_snapshot(session, version=version, state=rebuild_state(session, version=version).state)
    print(f"wrote {steps} steps in {time.perf_counter() - started:.0f} s")
    grown = sizes()
    rows = {
        "events": Event.objects.filter(session=session).count(),
        "snapshots": EventSnapshot.objects.filter(session=session).count(),
        "checkpoints": Checkpoint.objects.filter(session=session).count(),
    }

    long_ago = timezone.now() - timedelta(days=40)
    Event.objects.filter(session=session).update(created_at=long_ago)
    Checkpoint.objects.filter(session=session).update(created_at=long_ago)
    events_run = jobs.archive_events(dry_run=False, triggered_by="measure")
    checkpoints_run = jobs.apply_checkpoint_retention(dry_run=False, triggered_by="measure")
    after = sizes()
    kept = {
        "events": Event.objects.filter(session=session).count(),
        "snapshots": EventSnapshot.objects.filter(session=session).count(),
        "checkpoints": Checkpoint.objects.filter(session=session).count(),
    }
    archive = sum(ArchiveSegment.objects.filter(session=session).values_list("stored_bytes", flat=True))

    print(f"{'table':32} {'without policies':>18} {'with policies':>15}")
    for table in TABLES:
        print(f"{table:32} {grown[table] - before[table]:>18,} {after[table] - before[table]:>15,}")
    total_without = sum(grown[t] - before[t] for t in TABLES)
    total_with = sum(after[t] - before[t] for t in TABLES)
    print(f"{'total':32} {total_without:>18,} {total_with:>15,}")
    print(f"rows before: {rows}; rows kept: {kept}")
    print(f"archive objects: {archive:,} bytes (gzip JSON, payloads as stored)")
    print(f"event archival: {events_run.counts}; checkpoint retention: {checkpoints_run.counts}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
