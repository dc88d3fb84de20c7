"""Where a checkpoint save and a latest read spend CPU, in-process (no HTTP server, no load):

    python -m bench.checkpoints_breakdown            # against the bench profile's servers
    eval $(python -m memory_admin.runner env NAME) && python -m bench.checkpoints_breakdown   # or those

Each line is CPU time (process_time) per call, averaged over conversations of 50 turns as the `checkpoints`
suite's agents run them (a save per turn, the patch against the parent), so the figures cover every depth
of the delta chain. `--profile FILE` also writes a py-spy-free cProfile of the saves to FILE.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
import uuid
from collections.abc import Callable
from typing import Any


def _setup_django() -> None:
    if "DATABASE_URL" not in os.environ:
        from bench.service import environment

        os.environ.update(environment())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memory_admin.settings")
    os.environ["LOG_LEVEL"] = "warning"
    import django

    django.setup()


def measure(label: str, operation: Callable[[], object], count: int) -> tuple[str, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        operation()
    return label, (time.process_time() - cpu) / count * 1000, (time.perf_counter() - wall) / count * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkpoints_breakdown")
    parser.add_argument("--conversations", type=int, default=6)
    parser.add_argument("--profile", help="write a cProfile of the saves (pstats, sorted by cumulative time)")
    args = parser.parse_args(argv)
    _setup_django()
    from django.test import Client

    from bench.checkpoints_load import TURNS, checkpoint_body
    from checkpoints_app import selectors, services
    from sessions_app.models import AgentSession
    from tenants_app.services import get_or_create_tenant, issue_api_key

    tenant = get_or_create_tenant(name="bench")
    _, key = issue_api_key(tenant=tenant, name="checkpoints-breakdown")
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {key}")

    def new_session() -> str:
        response = client.post("/api/v1/sessions", {"user_id": "breakdown"}, content_type="application/json")
        return str(response.json()["id"])

    def http_conversation() -> tuple[str, list[float]]:
        sid, parent, cpu = new_session(), None, []
        for step in range(TURNS):
            started = time.process_time()
            response = client.post(
                f"/api/v1/sessions/{sid}/checkpoints", checkpoint_body(step, parent), content_type="application/json"
            )
            cpu.append(time.process_time() - started)
            assert response.status_code == 201, response.content
            parent = response.json()["id"]
        return sid, cpu

    def service_conversation() -> list[float]:
        sid = new_session()
        session = AgentSession.objects.get(tenant=tenant, session_id=sid)
        parent: uuid.UUID | None = None
        cpu = []
        for step in range(TURNS):
            body: dict[str, Any] = checkpoint_body(step, str(parent) if parent else None)
            started = time.process_time()
            outcome = services.save_checkpoint(
                session=session,
                node_id=body["node_id"],
                state=body.get("state"),
                patch=body.get("patch"),
                parent_id=parent,
                metadata=body["metadata"],
            )
            cpu.append(time.process_time() - started)
            parent = outcome.checkpoint.pk
            session.refresh_from_db(fields=["head_version"])
        return cpu

    http_conversation()  # warm imports and caches
    profiler = cProfile.Profile() if args.profile else None
    http_cpu: list[float] = []
    service_cpu: list[float] = []
    sid = ""
    for _ in range(args.conversations):
        if profiler:
            profiler.enable()
        sid, cpu = http_conversation()
        if profiler:
            profiler.disable()
        http_cpu += cpu
        service_cpu += service_conversation()
    if profiler and args.profile:
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(40)
    session = AgentSession.objects.get(tenant=tenant, session_id=sid)
    rows = [
        ("POST checkpoint, patch (whole request)", sum(http_cpu) / len(http_cpu) * 1000, 0.0),
        ("  services.save_checkpoint", sum(service_cpu) / len(service_cpu) * 1000, 0.0),
        measure(
            "GET checkpoints/latest, 50 messages (whole request)",
            lambda: client.get(f"/api/v1/sessions/{sid}/checkpoints/latest"),
            200,
        ),
        measure("  selectors.get_latest_checkpoint", lambda: selectors.get_latest_checkpoint(session=session), 200),
        measure("GET /healthz (Django, no DB)", lambda: client.get("/healthz"), 200),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"{'in-process, per call'.ljust(width)}  CPU ms  wall ms")
    for label, cpu_ms, wall_ms in rows:
        wall = f"  {wall_ms:7.2f}" if wall_ms else ""
        print(f"{label.ljust(width)}  {cpu_ms:6.2f}{wall}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
