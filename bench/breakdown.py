"""Where a hot-path request's CPU goes, measured in-process (no HTTP, no load): `python -m bench.breakdown`.

Runs against the bench profile's embedded servers (start them with `make bench` once). Each line is CPU
time (process_time) per call, averaged over a few hundred calls, so it is not inflated by waiting on other
processes the way latency is on a shared machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from bench.service import environment


def measure(label: str, operation: Callable[[], object], count: int = 300) -> tuple[str, float, float]:
    operation()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        operation()
    return label, (time.process_time() - cpu) / count * 1000, (time.perf_counter() - wall) / count * 1000


def main() -> int:
    os.environ.update(environment())
    os.environ["LOG_LEVEL"] = "warning"
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from sessions_app.models import AgentSession
    from tenants_app.selectors import active_key_for
    from tenants_app.services import get_or_create_tenant, issue_api_key

    tenant = get_or_create_tenant(name="bench")
    _, key = issue_api_key(tenant=tenant, name="breakdown")
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {key}")
    sid = client.post("/api/v1/sessions", {"user_id": "breakdown"}, content_type="application/json").json()["id"]
    message = {"messages": [{"role": "user", "content": "x" * 200}]}
    event = {"type": "TOOL_EXECUTED", "payload": {"tool": "search", "result": {"hits": [1, 2, 3]}}}
    base = f"/api/v1/sessions/{sid}"

    def raw_select() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, head_version FROM sessions_app_agentsession WHERE session_id = %s", [sid])
            cursor.fetchone()

    def post(path: str, body: object) -> object:
        return client.post(path, body, content_type="application/json")

    def orm_session() -> object:
        return AgentSession.objects.filter(tenant=tenant, session_id=sid).first()

    rows: list[tuple[str, float, float]] = [
        measure("GET /healthz (Django, no DB)", lambda: client.get("/healthz")),
        measure("POST context/messages (whole request)", lambda: post(f"{base}/context/messages", message)),
        measure("POST events (whole request)", lambda: post(f"{base}/events", event)),
        measure("GET context (whole request)", lambda: client.get(f"{base}/context")),
        measure("  API key lookup (ORM, per request)", lambda: active_key_for(key)),
        measure("  session lookup (ORM .first())", orm_session),
        measure("  same session lookup, raw SQL", raw_select),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"{'in-process, per call'.ljust(width)}  CPU ms  wall ms")
    for label, cpu, wall in rows:
        print(f"{label.ljust(width)}  {cpu:6.2f}  {wall:7.2f}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
