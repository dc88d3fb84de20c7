"""Bench suite `dashboard`: page times of the staff dashboard with a million sessions in the table.

    python -m bench dashboard

1. Bulk-loads about 1,000,000 sessions with SQL COPY into 20 tenants (`dash1m-t00` … `dash1m-t19`), once:
   100,000 distinct user ids, statuses mostly completed (failed ~1 %), created over the last 365 days. Later
   runs find them and reuse them (the load takes a minute or two on the 2-core machine).
2. Builds, once, a session of tenant `bench` with 10,000 events (through the API's batch appends) and 500
   checkpoints (through the API's save), as the issue's session page figure asks.
3. Starts the web server as `make run` does, logs in a support user through the login form, and requests each
   page one after another from one client (loopback, keep-alive): a few warm-up requests, then
   `mode.state_reads` timed ones. The figure is the time from sending the request to reading the whole
   response, which on loopback is the server's time plus well under a millisecond.

Pages: the sessions list (first page; filtered by tenant, by user, by tenant and user, by a rare status, by a
one-day time window; a page 900,000 rows deep through the keyset cursor), the session page of the
10,000-event session, its checkpoints page, and the overview.

Live-update latency: the WebSocket server `make run` starts (uvicorn) runs beside the web server; a client logged
in as the same support user watches a fresh session, and each round appends one event through the API and
waits for the `event.appended` frame carrying it. The figure is the time from sending the POST to receiving
that frame (what a browser gets before it draws the row).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import io
import json
import os
import random
import re
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import psycopg
import websockets

from bench.figures import Figure
from bench.service import HOST, PROFILE_DIR, manage, say
from memory_admin.embedded import free_port, port_answers
from memory_admin.runner import ROOT, _uvicorn_argv

if TYPE_CHECKING:
    from bench.cli import Bench

TENANTS = 20
SESSIONS = 1_000_000
USERS = 100_000
PREFIX = "dash1m"
STATUSES = (("completed", 60), ("active", 20), ("archived", 13), ("paused", 6), ("failed", 1))
LONG_SESSION = "bench-dashboard-10k-v1"
LONG_EVENTS = 10_000
LONG_CHECKPOINTS = 500
DEEP_OFFSET = 900_000
WARMUP_REQUESTS = 3
STAFF_USER = "bench-support"
STAFF_PASSWORD = "bench-support-password"  # noqa: S105 - a throwaway user on the bench's own database
TARGET_MS = 150.0
LIVE_TARGET_MS = 300.0


# --- data -----------------------------------------------------------------------------------------------


def _connect(env: dict[str, str]) -> psycopg.Connection[Any]:
    return psycopg.connect(env["DATABASE_URL"], autocommit=True)


def _tenant_ids(conn: psycopg.Connection[Any]) -> list[uuid.UUID]:
    names = [f"{PREFIX}-t{index:02d}" for index in range(TENANTS)]
    now = datetime.now(UTC)
    with conn.cursor() as cursor:
        for name in names:
            cursor.execute(
                "insert into tenants_app_tenant (id, name, created_at) values (%s, %s, %s) "
                "on conflict (name) do nothing",
                (uuid.uuid4(), name, now),
            )
        cursor.execute("select name, id from tenants_app_tenant where name = any(%s)", (names,))
        found = dict(cursor.fetchall())
    return [found[name] for name in names]


def _already_loaded(conn: psycopg.Connection[Any], tenants: list[uuid.UUID]) -> bool:
    with conn.cursor() as cursor:
        cursor.execute(
            "select exists(select 1 from sessions_app_agentsession where tenant_id = %s and session_id = %s)",
            (tenants[-1], f"{PREFIX}-{SESSIONS - 1:07d}"),
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def _copy_lines(tenants: list[uuid.UUID], start: int, stop: int, now: datetime, rng: random.Random) -> str:
    statuses = [status for status, weight in STATUSES for _ in range(weight)]
    span = timedelta(days=365).total_seconds()
    out = io.StringIO()
    for index in range(start, stop):
        created = now - timedelta(seconds=span * (SESSIONS - index) / SESSIONS + rng.random() * 30)
        active = min(now, created + timedelta(seconds=rng.random() * 3600))
        out.write(
            f"{uuid.uuid4()}\t{tenants[index % TENANTS]}\t{PREFIX}-{index:07d}\tuser-{rng.randrange(USERS):05d}\t"
            f"{rng.choice(statuses)}\t{{}}\t1\t{rng.randrange(300)}\t{created.isoformat()}\t{active.isoformat()}\t"
            f"{active.isoformat()}\n"
        )
    return out.getvalue()


def load_sessions(env: dict[str, str]) -> list[uuid.UUID]:
    """About a million sessions in 20 tenants (COPY, one transaction), unless an earlier run loaded them."""
    with _connect(env) as conn:
        tenants = _tenant_ids(conn)
        if _already_loaded(conn, tenants):
            say(f"{SESSIONS:,} dashboard sessions already loaded")
            return tenants
        say(f"loading {SESSIONS:,} sessions with COPY (once; later runs reuse them)")
        started = time.monotonic()
        # Reproducible data, not secrets.
        rng, now = random.Random(6), datetime.now(UTC)  # noqa: S311
        columns = (
            "id, tenant_id, session_id, user_id, status, metadata, version, head_version, "
            "created_at, updated_at, last_activity_at"
        )
        statement = f"copy sessions_app_agentsession ({columns}) from stdin"
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
            for start in range(0, SESSIONS, 50_000):
                copy.write(_copy_lines(tenants, start, min(SESSIONS, start + 50_000), now, rng))
        say(f"loaded in {time.monotonic() - started:.0f} s; vacuum analyze")
        conn.execute("vacuum analyze sessions_app_agentsession")
    return tenants


class Http:
    """One keep-alive HTTP/1.1 connection with a cookie jar of its own (enough for a login)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, float]:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            started = time.perf_counter()
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # the web server may close a keep-alive connection idle for a few seconds; a browser would reconnect.
            self.conn.close()
            started = time.perf_counter()
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                cookie, _, _ = value.partition(";")
                key, _, val = cookie.partition("=")
                self.cookies[key.strip()] = val.strip()
        return response.status, data, elapsed

    def api(self, key: str, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        status, data, _ = self.request(method, path, body, headers)
        return status, json.loads(data) if data else None

    def close(self) -> None:
        self.conn.close()


def build_long_session(bench: Bench) -> str:
    """The 10,000-event, 500-checkpoint session of tenant `bench` (built once); returns its row id."""
    assert bench.server is not None
    built = bench.build_stream(
        LONG_SESSION, LONG_EVENTS, connections=1, messages_every=10, what="building the 10,000-event session"
    )
    client = Http(bench.server.port)
    try:
        base = f"/api/v1/sessions/{LONG_SESSION}/checkpoints"
        status, page = client.api(bench.key, "GET", f"{base}/latest")
        have = int(page["sequence"]) if status == 200 else 0
        if have < LONG_CHECKPOINTS:
            say(f"saving checkpoints {have + 1}..{LONG_CHECKPOINTS} (once)")
        for sequence in range(have + 1, LONG_CHECKPOINTS + 1):
            state = {
                "step": sequence,
                "plan": [f"step {n}" for n in range(sequence % 7 + 1)],
                "notes": {f"tool-{n}": f"result {sequence - n}" for n in range(sequence % 5 + 1)},
                "messages": [f"message {sequence - n}" for n in range(min(sequence, 5))],
            }
            status, answer = client.api(bench.key, "POST", base, {"node_id": f"node-{sequence % 7}", "state": state})
            if status not in (200, 201):
                raise RuntimeError(f"checkpoint {sequence} answered {status}: {answer}")
        status, session = client.api(bench.key, "GET", f"/api/v1/sessions/{LONG_SESSION}")
    finally:
        client.close()
    bench.details.setdefault("dashboard", {})["long_session"] = {
        "head_version": session.get("head_version") if isinstance(session, dict) else None,
        "built": {k: built.get(k) for k in ("appended", "seconds", "errors")},
    }
    with _connect(bench.env) as conn:
        row = conn.execute(
            "select s.id from sessions_app_agentsession s join tenants_app_tenant t on t.id = s.tenant_id "
            "where t.name = 'bench' and s.session_id = %s and s.erased_at is null",
            (LONG_SESSION,),
        ).fetchone()
    assert row is not None
    return str(row[0])


def staff_login(env: dict[str, str], port: int) -> Http:
    """A support user (created or reset here) logged in through the real login form."""
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import Group, User\n"
        "from tenants_app.services import ensure_role_groups\n"
        "ensure_role_groups()\n"
        f"user, _ = User.objects.get_or_create(username={STAFF_USER!r})\n"
        f"user.set_password({STAFF_PASSWORD!r}); user.is_active = True; user.save()\n"
        "user.groups.set([Group.objects.get(name='support')])\n",
    )
    client = Http(port)
    status, page, _ = client.request("GET", "/login/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if status != 200 or token is None:
        raise RuntimeError(f"the login page answered {status} without a CSRF token")
    form = urlencode({"username": STAFF_USER, "password": STAFF_PASSWORD, "csrfmiddlewaretoken": token.group(1)})
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Referer": f"http://{HOST}:{port}/login/"}
    status, _, _ = client.request("POST", "/login/", form.encode(), headers)
    if status != 302 or "sessionid" not in client.cookies:
        raise RuntimeError(f"logging in answered {status}, cookies {sorted(client.cookies)}")
    return client


# --- pages ----------------------------------------------------------------------------------------------


def _cursor(env: dict[str, str], offset: int) -> str:
    """The keyset cursor the sessions list puts on its "older" link after `offset` rows."""
    with _connect(env) as conn:
        row = conn.execute(
            "select created_at, id from sessions_app_agentsession where erased_at is null "
            "order by created_at desc, id desc offset %s limit 1",
            (offset,),
        ).fetchone()
    assert row is not None
    return base64.urlsafe_b64encode(f"{row[0].isoformat()}|{row[1]}".encode()).decode()


def pages(env: dict[str, str], tenants: list[uuid.UUID], long_session: str) -> dict[str, str]:
    day = datetime.now(UTC) - timedelta(days=180)
    window = {
        "created_after": day.strftime("%Y-%m-%dT%H:%M"),
        "created_before": (day + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
    }
    return {
        "sessions_first": "/sessions/",
        "sessions_tenant": f"/sessions/?tenant={tenants[7]}",
        "sessions_user": "/sessions/?q=user-04242",
        "sessions_tenant_user": f"/sessions/?tenant={tenants[3]}&q=user-04243",
        "sessions_status_failed": "/sessions/?status=failed",
        "sessions_tenant_status": f"/sessions/?tenant={tenants[5]}&status=failed",
        "sessions_day_window": f"/sessions/?{urlencode(window)}",
        "sessions_deep_cursor": f"/sessions/?cursor={_cursor(env, DEEP_OFFSET)}",
        "session_page_10k": f"/sessions/{long_session}/",
        "session_checkpoints_500": f"/sessions/{long_session}/checkpoints/",
        "overview": "/",
    }


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure(client: Http, path: str, count: int) -> dict[str, Any]:
    for _ in range(WARMUP_REQUESTS):
        status, _, _ = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
    samples, size = [], 0
    for _ in range(count):
        status, body, elapsed = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        samples.append(elapsed)
        size = len(body)
    return {
        "count": count,
        "p50_ms": round(_percentile(samples, 0.5), 2),
        "p95_ms": round(_percentile(samples, 0.95), 2),
        "max_ms": round(max(samples) * 1000, 2),
        "bytes": size,
    }


# --- live-update latency ----------------------------------------------------------------------------------


def _session_pk(env: dict[str, str], session_id: str) -> str:
    with _connect(env) as conn:
        row = conn.execute(
            "select s.id from sessions_app_agentsession s join tenants_app_tenant t on t.id = s.tenant_id "
            "where t.name = 'bench' and s.session_id = %s and s.erased_at is null",
            (session_id,),
        ).fetchone()
    if row is None:
        raise RuntimeError(f"session {session_id} was not found")
    return str(row[0])


async def _live_rounds(bench: Bench, ws_port: int, cookies: dict[str, str], rounds: int) -> list[float]:
    assert bench.server is not None
    api = Http(bench.server.port)
    session_id = f"bench-live-{uuid.uuid4().hex[:12]}"
    status, created = api.api(bench.key, "POST", "/api/v1/sessions", {"user_id": "live-bench", "id": session_id})
    if status not in (200, 201):
        raise RuntimeError(f"creating the live session answered {status}: {created}")
    session_pk = _session_pk(bench.env, session_id)
    headers = {
        "Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items()),
        "Origin": f"http://{HOST}:{ws_port}",
    }
    samples: list[float] = []
    try:
        async with websockets.connect(f"ws://{HOST}:{ws_port}/ws/live/", additional_headers=headers) as socket:
            await socket.send(json.dumps({"action": "watch_session", "session": session_pk, "after_version": 0}))
            if json.loads(await socket.recv())["type"] != "catchup":
                raise RuntimeError("watching the session did not start with a catch-up frame")
            for version in range(1, rounds + WARMUP_REQUESTS + 1):
                event = {"type": "TOOL_EXECUTED", "payload": {"tool": "search", "result": {"round": version}}}
                started = time.perf_counter()
                posting = asyncio.create_task(
                    asyncio.to_thread(api.api, bench.key, "POST", f"/api/v1/sessions/{session_id}/events", event)
                )
                while True:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
                    if frame.get("type") == "event.appended" and frame.get("version") == version:
                        break
                elapsed = time.perf_counter() - started
                status, answer = await posting
                if status != 201:
                    raise RuntimeError(f"appending answered {status}: {answer}")
                if version > WARMUP_REQUESTS:
                    samples.append(elapsed)
    finally:
        api.close()
    return samples


def live_latency(bench: Bench, cookies: dict[str, str], rounds: int) -> dict[str, Any]:
    """Start uvicorn as `make run` does, measure `rounds` API-write-to-frame latencies, stop it."""
    port = free_port()
    with (PROFILE_DIR / "websockets.log").open("wb") as log:
        process = subprocess.Popen(
            _uvicorn_argv(HOST, port),
            env=bench.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not port_answers(port, HOST):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start; see {PROFILE_DIR / 'websockets.log'}")
            time.sleep(0.2)
        samples = asyncio.run(_live_rounds(bench, port, cookies, rounds))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    return {
        "count": len(samples),
        "p50_ms": round(_percentile(samples, 0.5), 2),
        "p95_ms": round(_percentile(samples, 0.95), 2),
        "max_ms": round(max(samples) * 1000, 2),
    }


def dashboard_suite(bench: Bench) -> list[Figure]:
    """Page times of the sessions list, a session page and the overview at a million sessions."""
    tenants = load_sessions(bench.env)
    results: dict[str, dict[str, Any]] = {}

    def body() -> None:
        assert bench.server is not None
        long_session = build_long_session(bench)
        client = staff_login(bench.env, bench.server.port)
        try:
            for name, path in pages(bench.env, tenants, long_session).items():
                say(f"[dashboard] {name}: {path[:90]}")
                results[name] = measure(client, path, bench.mode.state_reads)
            say("[dashboard] live-update latency: API append -> event.appended frame on the WebSocket")
            results["live_update"] = live_latency(bench, client.cookies, bench.mode.state_reads)
        finally:
            client.close()

    bench.with_server(bench.main_topology, body)
    with _connect(bench.env) as conn:
        row = conn.execute("select count(*) from sessions_app_agentsession").fetchone()
    bench.details.setdefault("dashboard", {}).update({"sessions_in_table": row[0] if row else None, "pages": results})
    figures = []
    for name, result in results.items():
        target = f"<= {TARGET_MS:.0f}" if name.startswith("session") else ""
        if name == "live_update":
            target = f"<= {LIVE_TARGET_MS:.0f}"
        figures.append(Figure(f"dashboard_{name}_p95", "ms", result["p95_ms"], target=target))
        figures.append(Figure(f"dashboard_{name}_p50", "ms", result["p50_ms"]))
    return figures
