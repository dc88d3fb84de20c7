"""The erasure benchmark's Django side (`python -m bench.erasure_job`, run by bench/erasure.py with the bench env).

1. Setup: a heavy person in tenant `bench-erasure` — sessions with 1,000,000 events, snapshots, operations,
   10,000 checkpoints, 100,000 memories with vectors, revisions, a profile with outbox rows, hot context in
   Redis — plus a bystander in the same tenant. Rows are bulk-loaded (COPY, or INSERT … SELECT for the
   memories, whose vectors are one server-side value), but every payload goes through the real codec: encrypted
   with the person's data key, checkpoints through checkpoints_app.storage with their SHA-256 chain.
   Prints {"phase": "ready", …} and waits for a line on stdin.
2. The workflow, timed: file a request, preview it, approve it (logical deletion, key destruction), then wait
   for the Celery worker to purge and verify (or run the purge here with {"worker": false}). Prints
   {"phase": "done", …} with the timings, the rows purged, and whether the bystander is untouched.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Any

import django

SESSIONS = 100
CHECKPOINTS_PER_SESSION = 100
SNAPSHOT_EVERY = 1000
OPERATIONS_PER_SESSION = 10
REVISIONS = 1000


def say(message: str) -> None:
    print(f"[erasure-job] {message}", file=sys.stderr, flush=True)


def emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


def setup(*, events: int, memories: int, checkpoints: int) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from checkpoints_app.models import Checkpoint, CheckpointHead
    from checkpoints_app.storage import Body, Owner, chain_checksum, encode_body
    from memories_app.models import ProfileFactOutbox, UserProfile
    from memory_admin.codec import canonical_json, encoder_for
    from sessions_app.context import store_rebuilt
    from sessions_app.models import AgentSession
    from tenants_app.models import Tenant

    started = time.monotonic()
    tenant, _ = Tenant.objects.get_or_create(name="bench-erasure")
    user_id = f"heavy-{uuid.uuid4().hex[:10]}"
    bystander = f"bystander-{uuid.uuid4().hex[:10]}"
    now = timezone.now()
    per_session = events // SESSIONS
    sessions = AgentSession.objects.bulk_create(
        [
            AgentSession(tenant=tenant, session_id=f"{user_id}-s{i}", user_id=user_id, head_version=per_session)
            for i in range(SESSIONS)
        ]
        + [AgentSession(tenant=tenant, session_id=f"{bystander}-s0", user_id=bystander, head_version=100)]
    )
    heavy, other = sessions[:-1], sessions[-1]
    encode = encoder_for(tenant_id=tenant.pk, user_id=user_id)
    encode_other = encoder_for(tenant_id=tenant.pk, user_id=bystander)

    say(f"COPY {events:,} events (each encrypted with the person's key)")
    with connection.cursor() as cursor:
        columns = "(session_id, version, type, payload, schema_version, created_at)"
        with cursor.connection.cursor().copy(f"COPY sessions_app_event {columns} FROM STDIN") as copy:
            for session in heavy:
                for version in range(1, per_session + 1):
                    payload = {"role": "user", "content": f"step {version}: book the 08:15 to Oslo for {user_id}"}
                    copy.write_row((session.pk, version, "MESSAGE_ADDED", encode(payload), 1, now))
            for version in range(1, 101):
                copy.write_row((other.pk, version, "MESSAGE_ADDED", encode_other({"content": f"hi {version}"}), 1, now))
        say("COPY snapshots and operations")
        with cursor.connection.cursor().copy(
            "COPY sessions_app_eventsnapshot (session_id, version, state, schema_version, created_at) FROM STDIN"
        ) as copy:
            for session in heavy:
                for version in range(SNAPSHOT_EVERY, per_session + 1, SNAPSHOT_EVERY):
                    copy.write_row((session.pk, version, encode({"messages": version, "owner": user_id}), 1, now))
        with cursor.connection.cursor().copy(
            "COPY sessions_app_operation (id, session_id, name, key, status, params, result, created_at) FROM STDIN"
        ) as copy:
            for session in heavy:
                for i in range(OPERATIONS_PER_SESSION):
                    params, result = encode({"to": f"{user_id}@example.com"}), encode({"sent": True})
                    copy.write_row((uuid.uuid4(), session.pk, "email", f"op-{i}", "completed", params, result, now))

        say(f"COPY {checkpoints:,} checkpoints (codec payloads, SHA-256 chain)")
        per_session_checkpoints = checkpoints // SESSIONS
        heads = []
        columns = (
            "(id, session_id, sequence, parent_id, node_id, metadata, schema_version, kind, payload, checksum, "
            "event_version, created_at, pruned_parent_checksum)"
        )
        with cursor.connection.cursor().copy(f"COPY checkpoints_app_checkpoint {columns} FROM STDIN") as copy:
            owner = Owner(tenant_id=tenant.pk, user_id=user_id)
            for session in heavy:
                parent_id, parent_checksum = None, None
                for sequence in range(1, per_session_checkpoints + 1):
                    state = {"step": sequence, "plan": ["search", "book", "pay"], "traveller": user_id}
                    checksum = chain_checksum(
                        parent_checksum=parent_checksum,
                        sequence=sequence,
                        node_id="book",
                        metadata={},
                        state_json=canonical_json(state),
                    )
                    pk = uuid.uuid4()
                    stored = encode_body(Body(state=state), owner=owner)
                    copy.write_row(
                        (pk, session.pk, sequence, parent_id, "book", "{}", 1, "full", stored, checksum, 0, now, "")
                    )
                    parent_id, parent_checksum = pk, checksum
                heads.append(
                    CheckpointHead(session=session, last_sequence=per_session_checkpoints, latest_id=parent_id)
                )
        CheckpointHead.objects.bulk_create(heads)

        say(f"INSERT {memories:,} memories with vectors (one 384-dimension vector, server-side)")
        vector = "[" + ",".join(f"{((i * 7919) % 1000) / 1000 - 0.5:.4f}" for i in range(384)) + "]"
        session_ids = [str(session.pk) for session in heavy]
        cursor.execute(
            "insert into memories_app_memory (id, tenant_id, scope, user_id, session_id, content, embedding, "
            "embedding_model, dimensions, metadata, source, source_key, access_count, version, created_at, "
            "updated_at) "
            "select gen_random_uuid(), %s, case when i %% 10 = 0 then 'session' else 'user' end, %s, "
            "case when i %% 10 = 0 then (%s::uuid[])[1 + i %% %s] end, "
            "'fact ' || i || ' about ' || %s, %s::vector, 'hashing-384', 384, '{}', "
            "case when i %% 50 = 0 then 'promotion' else 'api' end, '', 0, 1, now(), now() "
            "from generate_series(1, %s) as i",
            [tenant.pk, user_id, session_ids, len(session_ids), user_id, vector, memories],
        )
        cursor.execute(
            "insert into memories_app_memory (id, tenant_id, scope, user_id, content, embedding, embedding_model, "
            "dimensions, metadata, source, source_key, access_count, version, created_at, updated_at) "
            "select gen_random_uuid(), %s, 'user', %s, 'bystander fact ' || i, %s::vector, 'hashing-384', 384, "
            "'{}', 'api', '', 0, 1, now(), now() from generate_series(1, 10) as i",
            [tenant.pk, bystander, vector],
        )
        cursor.execute(
            "insert into memories_app_memoryrevision (memory_id, version, kind, actor, previous_content, content, "
            "inputs, created_at) select id, 2, 'update', 'agent', content, content || ' (edited)', '{}', now() "
            "from memories_app_memory where tenant_id = %s and user_id = %s limit %s",
            [tenant.pk, user_id, REVISIONS],
        )
        cursor.execute("analyze")
    UserProfile.objects.create(tenant=tenant, user_id=user_id, facts={"city": f"Oslo ({user_id})"})
    ProfileFactOutbox.objects.create(
        tenant=tenant, user_id=user_id, fact_key="city", operation="upsert", content="Oslo", profile_version=1
    )
    for session in heavy:
        store_rebuilt(
            session.pk, head=per_session, messages=[{"role": "user", "content": f"hello from {user_id}"}], ttl=3600
        )
    loaded = {
        "events": events,
        "checkpoints": Checkpoint.objects.filter(session__in=heavy).count(),
        "memories": memories,
        "sessions": len(heavy),
    }
    return {
        "tenant": str(tenant.pk),
        "user_id": user_id,
        "bystander": bystander,
        "setup_seconds": round(time.monotonic() - started, 1),
        "loaded": loaded,
    }


def bystander_state(tenant_id: str, bystander: str) -> dict[str, int]:
    from memories_app.models import Memory
    from sessions_app.models import AgentSession, Event

    sessions = AgentSession.objects.filter(tenant_id=tenant_id, user_id=bystander)
    return {
        "sessions": sessions.count(),
        "events": Event.objects.filter(session__in=sessions).count(),
        "memories": Memory.objects.filter(tenant_id=tenant_id, user_id=bystander, deleted_at__isnull=True).count(),
    }


def workflow(ready: dict[str, Any], *, with_worker: bool, timeout: float) -> dict[str, Any]:
    from compliance_app import selectors, services
    from compliance_app.models import AuditEntry, ErasureRequest
    from compliance_app.tasks import purge_erasure
    from tenants_app.models import Tenant

    tenant = Tenant.objects.get(pk=ready["tenant"])
    before = bystander_state(ready["tenant"], ready["bystander"])
    request = services.file_erasure(
        tenant=tenant, user_id=ready["user_id"], legal_basis="gdpr_art_17", filed_by="staff:bench-filer"
    )
    started = time.monotonic()
    preview = selectors.current_preview(request)
    preview_seconds = time.monotonic() - started

    started = time.monotonic()
    services.approve_erasure(request_id=request.pk, decided_by="staff:bench-approver")
    approve_seconds = time.monotonic() - started
    approved_at = time.monotonic()

    if not with_worker:
        purge_erasure(str(request.pk))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ErasureRequest.objects.values_list("status", flat=True).get(pk=request.pk)
        if status in ("verified", "failed"):
            break
        time.sleep(0.2)
    finished = time.monotonic()
    request.refresh_from_db()
    marks = {entry.action: entry.at for entry in AuditEntry.objects.filter(erasure=request).order_by("id")}
    purge_seconds = verify_seconds = None
    if "purge_started" in marks and "purged" in marks:
        purge_seconds = (marks["purged"] - marks["purge_started"]).total_seconds()
    if "purged" in marks and request.verified_at is not None:
        verify_seconds = (request.verified_at - marks["purged"]).total_seconds()
    rows = sum(count for layer, count in request.purged.items() if layer != "redis_keys")
    return {
        "phase": "done",
        "status": request.status,
        "preview": preview,
        "preview_seconds": preview_seconds,
        "approve_seconds": approve_seconds,
        "queue_wait_seconds": (
            (marks["purge_started"] - marks["erased_logically"]).total_seconds() if "purge_started" in marks else None
        ),
        "purge_seconds": purge_seconds,
        "purged_rows": rows,
        "purged": request.purged,
        "purge_rows_per_second": rows / purge_seconds if purge_seconds else None,
        "verify_seconds": verify_seconds,
        "approval_to_verified_seconds": finished - approved_at,
        "verification": request.verification,
        "bystander_untouched": bystander_state(ready["tenant"], ready["bystander"]) == before,
    }


def main() -> int:
    spec = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memory_admin.settings")
    django.setup()
    ready = setup(
        events=int(spec.get("events", 1_000_000)),
        memories=int(spec.get("memories", 100_000)),
        checkpoints=int(spec.get("checkpoints", 10_000)),
    )
    emit({"phase": "ready", **ready})
    sys.stdin.readline()  # the suite says when the background load is running
    emit(workflow(ready, with_worker=bool(spec.get("worker", True)), timeout=float(spec.get("timeout", 900))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
