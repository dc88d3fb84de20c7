"""The load generator: a separate process that drives the service over loopback HTTP/1.1 keep-alive.

    python -m bench.load < spec.json > result.json

It is deliberately lean so that it is not the bottleneck on a 2-core machine: one asyncio event loop (uvloop
when installed), one raw keep-alive connection per simulated agent, request heads built once, responses
parsed just enough to find their end. It measures its own CPU time so the harness can report its overhead.

Every loop is bounded twice: by the scenario's deadline and by `max_requests`. Requests that started before
the warm-up ended or finished after the deadline are not counted.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

# How long past the deadline stragglers may run before they are cancelled.
GRACE_SECONDS = 30.0


class ProtocolError(RuntimeError):
    pass


class _Http(asyncio.Protocol):
    """One HTTP/1.1 connection that carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = self._parse()
        except (ValueError, ProtocolError) as exc:
            waiter.set_exception(ProtocolError(str(exc)))
            return
        if parsed is not None:
            waiter.set_result(parsed)

    def _parse(self) -> tuple[int, bytes, bool] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length: int | None = None
        chunked = close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            lowered = name.strip().lower()
            if lowered == "content-length":
                length = int(value)
            elif lowered == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lowered == "connection":
                close = value.strip().lower() == "close"
        start = end + 4
        if chunked:
            decoded = _dechunk(self.buffer, start)
            if decoded is None:
                return None
            body, stop = decoded
        else:
            if length is None:
                raise ProtocolError("a response without Content-Length or chunked encoding")
            if len(self.buffer) < start + length:
                return None
            body, stop = bytes(self.buffer[start : start + length]), start + length
        del self.buffer[:stop]
        return status, body, close


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    parts: list[bytes] = []
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        chunk_start = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", chunk_start)
            return (b"".join(parts), trailer_end + 2) if trailer_end >= 0 else None
        if len(buffer) < chunk_start + size + 2:
            return None
        parts.append(bytes(buffer[chunk_start : chunk_start + size]))
        position = chunk_start + size + 2


class Client:
    """A keep-alive connection with the caller's headers baked in; reconnects when the server closes."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.fixed = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\nAccept: application/json\r\n"
            "Connection: keep-alive\r\n"
        ).encode()
        self.conn: _Http | None = None
        self.requests = 0

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self.conn is None or self.conn.closed:
            loop = asyncio.get_running_loop()
            _, self.conn = await loop.create_connection(_Http, self.host, self.port)
        conn = self.conn
        assert conn.transport is not None
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self.fixed
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
            conn.transport.write(head + body)
        else:
            conn.transport.write(head + b"\r\n")
        conn.waiter = asyncio.get_running_loop().create_future()
        self.requests += 1
        status, payload, close = await conn.waiter
        conn.waiter = None
        if close:
            conn.transport.close()
            self.conn = None
        return status, payload

    def close(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()
        self.conn = None


@dataclass
class Recorder:
    warm_until: float = 0.0
    deadline: float = 0.0
    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_examples: dict[str, str] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)

    def running(self) -> bool:
        return time.perf_counter() < self.deadline

    async def call(
        self, name: str, client: Client, method: str, path: str, body: Any = None, *, expect: tuple[int, ...] = (200,)
    ) -> Any:
        raw = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        started = time.perf_counter()
        status, payload = await client.request(method, path, raw)
        finished = time.perf_counter()
        if status not in expect:
            self.errors[name] = self.errors.get(name, 0) + 1
            self.error_examples.setdefault(name, f"{status}: {payload[:300].decode('utf-8', 'replace')}")
            return None
        if started >= self.warm_until and finished <= self.deadline:
            self.samples.setdefault(name, []).append(finished - started)
        return json.loads(payload) if payload else {}

    def note(self, name: str, amount: int = 1) -> None:
        self.notes[name] = self.notes.get(name, 0) + amount


# --- the agent's requests -------------------------------------------------------------------------------

SESSIONS = "/api/v1/sessions"


def message(index: int, role: str = "user", size: int = 200) -> dict[str, Any]:
    text = f"message {index}: " + "the quick brown fox jumps over the lazy dog " * (size // 44 + 1)
    return {"role": role, "content": text[:size]}


def tool_event(index: int) -> dict[str, Any]:
    return {
        "type": "TOOL_EXECUTED",
        "payload": {
            "tool": "search",
            "result": {"query": f"query {index}", "hits": [{"id": index, "score": 0.9, "title": "a result"}]},
        },
    }


async def create_session(rec: Recorder, client: Client, user: str, session_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user}
    if session_id:
        body["id"] = session_id
    created = await rec.call("create_session", client, "POST", SESSIONS, body, expect=(200, 201))
    if created is None:
        raise ProtocolError(f"could not create a session: {rec.error_examples.get('create_session')}")
    return dict(created)


async def append_message(rec: Recorder, client: Client, sid: str, index: int, role: str = "user") -> Any:
    body = {"messages": [message(index, role)]}
    return await rec.call("context_append", client, "POST", f"{SESSIONS}/{sid}/context/messages", body, expect=(201,))


async def append_event(rec: Recorder, client: Client, sid: str, index: int) -> Any:
    return await rec.call("event_append", client, "POST", f"{SESSIONS}/{sid}/events", tool_event(index), expect=(201,))


async def read_context(rec: Recorder, client: Client, sid: str) -> Any:
    return await rec.call("context_read", client, "GET", f"{SESSIONS}/{sid}/context")


async def read_state(rec: Recorder, client: Client, sid: str, version: int | None = None, name: str = "state") -> Any:
    path = f"{SESSIONS}/{sid}/state" + ("" if version is None else f"?version={version}")
    return await rec.call(name, client, "GET", path)


# --- scenarios: setup(client, index) returns what run(client, index, setup) needs --------------------------

Setup = Callable[[Recorder, Client, int, dict[str, Any]], Awaitable[Any]]
Run = Callable[[Recorder, Client, int, Any, dict[str, Any]], Awaitable[None]]


async def _no_setup(rec: Recorder, client: Client, index: int, params: dict[str, Any]) -> Any:
    return None


async def _new_session(rec: Recorder, client: Client, index: int, params: dict[str, Any]) -> Any:
    return (await create_session(rec, client, f"bench-user-{index}"))["id"]


async def _session_with_window(rec: Recorder, client: Client, index: int, params: dict[str, Any]) -> Any:
    sid = await _new_session(rec, client, index, params)
    window = int(params.get("window", 50))
    # One message more than the window, so a read returns a full window of the latest messages.
    for start in (0, window):
        count = window if start == 0 else 1
        body = {"messages": [message(start + i, "user" if i % 2 == 0 else "assistant") for i in range(count)]}
        if await rec.call("setup_append", client, "POST", f"{SESSIONS}/{sid}/context/messages", body, expect=(201,)):
            continue
        raise ProtocolError(f"setup failed: {rec.error_examples.get('setup_append')}")
    first = await read_context(rec, client, sid)
    if not first or len(first["messages"]) != window:
        raise ProtocolError(f"the context window holds {len(first['messages']) if first else '?'} messages")
    return sid


async def run_healthz(rec: Recorder, client: Client, index: int, setup: Any, params: dict[str, Any]) -> None:
    while rec.running():
        await rec.call("healthz", client, "GET", "/healthz")


async def run_append_messages(rec: Recorder, client: Client, index: int, sid: Any, params: dict[str, Any]) -> None:
    i = 0
    while rec.running() and i < params["max_requests"]:
        await append_message(rec, client, sid, i, "user" if i % 2 == 0 else "assistant")
        i += 1


async def run_read_context(rec: Recorder, client: Client, index: int, sid: Any, params: dict[str, Any]) -> None:
    i = 0
    while rec.running() and i < params["max_requests"]:
        body = await read_context(rec, client, sid)
        if body is not None:
            rec.note(f"source_{body['source']}")
            if len(body["messages"]) != params.get("window", 50):
                rec.note("short_window")
        i += 1


async def _sessions_with_windows(rec: Recorder, client: Client, index: int, params: dict[str, Any]) -> Any:
    """`sessions` sessions per client, each with a full window of messages (read once, so cached)."""
    return [await _session_with_window(rec, client, index, params) for _ in range(int(params.get("sessions", 25)))]


_flush = asyncio.Lock()
_flushed: list[bool] = []


async def run_read_context_rebuilt(
    rec: Recorder, client: Client, index: int, sids: Any, params: dict[str, Any]
) -> None:
    """Redis loses everything (FLUSHDB, once, as after a restart), then each client reads each of its
    sessions' windows once: every read finds no cache and rebuilds the window from Postgres events."""
    async with _flush:
        if not _flushed:
            import redis

            redis.Redis.from_url(params["redis_url"]).flushdb()
            _flushed.append(True)
    for sid in sids:
        if not rec.running():
            break
        body = await rec.call("context_read_rebuilt", client, "GET", f"{SESSIONS}/{sid}/context")
        if body is not None:
            rec.note(f"source_{body['source']}")


async def run_append_events(rec: Recorder, client: Client, index: int, sid: Any, params: dict[str, Any]) -> None:
    i = 0
    while rec.running() and i < params["max_requests"]:
        await append_event(rec, client, sid, i)
        i += 1


async def run_agent_loop(rec: Recorder, client: Client, index: int, setup: Any, params: dict[str, Any]) -> None:
    """Each agent: create a session; per step append a user message, a tool event and the assistant's reply,
    then read the context window; after the last step read the state. Repeat with a new session."""
    steps = int(params.get("steps", 10))
    loops = 0
    while rec.running() and loops < params["max_requests"]:
        sid = (await create_session(rec, client, f"bench-agent-{index}"))["id"]
        for step in range(steps):
            if not rec.running():
                return
            await append_message(rec, client, sid, step * 2, "user")
            await append_event(rec, client, sid, step)
            await append_message(rec, client, sid, step * 2 + 1, "assistant")
            await read_context(rec, client, sid)
            if rec.running() and time.perf_counter() >= rec.warm_until:
                rec.note("steps")
        await read_state(rec, client, sid)
        loops += 1


async def run_state_reads(rec: Recorder, client: Client, index: int, setup: Any, params: dict[str, Any]) -> None:
    sid, version = params["session_id"], params.get("version")
    if index == 0 and "first_op" in params:
        # The first read after the stream was built: it may replay from the last snapshot and leave one.
        saved = rec.warm_until
        rec.warm_until = 0.0
        await read_state(rec, client, sid, version, name=params["first_op"])
        rec.warm_until = saved
    i = 0
    while rec.running() and i < params["max_requests"]:
        body = await read_state(rec, client, sid, version, name=params.get("op", "state"))
        if body is not None:
            rec.note("replayed_events", int(body["replayed_events"]))
            rec.note("reads")
        i += 1


SCENARIOS: dict[str, tuple[Setup, Run]] = {
    "healthz": (_no_setup, run_healthz),
    "append_messages": (_new_session, run_append_messages),
    "read_context": (_session_with_window, run_read_context),
    "read_context_rebuilt": (_sessions_with_windows, run_read_context_rebuilt),
    "append_events": (_new_session, run_append_events),
    "agent_loop": (_no_setup, run_agent_loop),
    "state_reads": (_no_setup, run_state_reads),
}


# --- building a long stream ----------------------------------------------------------------------------


def _long_stream_events(start: int, count: int, messages_every: int) -> list[dict[str, Any]]:
    """A mix of tool results (over 20 tools), node transitions and, optionally, messages."""
    events: list[dict[str, Any]] = []
    for version in range(start, start + count):
        if messages_every and version % messages_every == 0:
            events.append({"type": "MESSAGE_ADDED", "payload": message(version, "assistant", 150)})
        elif version % 3 == 0:
            events.append({"type": "NODE_TRANSITION", "payload": {"node": f"node-{version % 7}"}})
        else:
            event = tool_event(version)
            event["payload"]["tool"] = f"tool-{version % 20}"
            events.append(event)
    return events


async def build_stream(host: str, port: int, key: str, params: dict[str, Any]) -> dict[str, Any]:
    """Make sure session `session_id` holds at least `events` events, appending batches of `batch`."""
    rec = Recorder(warm_until=0.0, deadline=time.perf_counter() + float(params["timeout"]))
    clients = [Client(host, port, key) for _ in range(int(params.get("connections", 2)))]
    try:
        session = await create_session(rec, clients[0], "bench-long-stream", params["session_id"])
        sid, target, batch = session["id"], int(params["events"]), int(params["batch"])
        head = int(session["head_version"])
        todo = max(0, target - head)
        batches = [(head + 1 + offset, min(batch, todo - offset)) for offset in range(0, todo, batch)]
        started = time.perf_counter()

        async def feed(client: Client) -> None:
            while batches and rec.running():
                first, count = batches.pop(0)
                body = {"events": _long_stream_events(first, count, int(params.get("messages_every", 0)))}
                result = await rec.call("batch_append", client, "POST", f"{SESSIONS}/{sid}/events", body, expect=(201,))
                if result is None:
                    return

        await asyncio.gather(*(feed(client) for client in clients))
        elapsed = time.perf_counter() - started
        final = await rec.call("session", clients[0], "GET", f"{SESSIONS}/{sid}")
    finally:
        for client in clients:
            client.close()
    return {
        "session_id": sid,
        "head_version": int(final["head_version"]) if final else None,
        "appended": todo,
        "seconds": elapsed,
        "events_per_second": todo / elapsed if todo and elapsed > 0 else None,
        "errors": rec.errors,
        "error_examples": rec.error_examples,
    }


# --- running a scenario --------------------------------------------------------------------------------


def summarize(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    n = len(ordered)

    def quantile(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] * 1000

    return {
        "count": n,
        "p50_ms": quantile(0.50),
        "p90_ms": quantile(0.90),
        "p99_ms": quantile(0.99),
        "max_ms": ordered[-1] * 1000,
        "mean_ms": sum(ordered) / n * 1000,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_scenario(spec: dict[str, Any], scenarios: dict[str, tuple[Setup, Run]] | None = None) -> dict[str, Any]:
    """Run one closed-loop scenario; `scenarios` lets another suite's load module bring its own."""
    host, port, key = spec["host"], int(spec["port"]), spec["key"]
    if spec["scenario"] == "build_stream":
        return await build_stream(host, port, key, spec["params"])
    setup, run = (SCENARIOS if scenarios is None else scenarios)[spec["scenario"]]
    params = {"max_requests": 1_000_000, **spec.get("params", {})}
    concurrency = int(spec["concurrency"])
    clients = [Client(host, port, key) for _ in range(concurrency)]
    rec = Recorder(deadline=time.perf_counter() + GRACE_SECONDS + 60)
    try:
        prepared = await asyncio.wait_for(
            asyncio.gather(*(setup(rec, client, i, params) for i, client in enumerate(clients))), timeout=120
        )
        setup_requests = sum(client.requests for client in clients)
        now = time.perf_counter()
        rec.warm_until = now + float(spec["warmup"])
        rec.deadline = rec.warm_until + float(spec["duration"])
        cpu_before, wall_before = _cpu_seconds(), now
        tasks = [asyncio.ensure_future(run(rec, client, i, prepared[i], params)) for i, client in enumerate(clients)]
        done, pending = await asyncio.wait(tasks, timeout=rec.deadline - now + GRACE_SECONDS)
        for task in pending:
            task.cancel()
        cpu, wall = _cpu_seconds() - cpu_before, time.perf_counter() - wall_before
        failures = [repr(task.exception()) for task in done if not task.cancelled() and task.exception()]
    finally:
        for client in clients:
            client.close()
    window = rec.deadline - rec.warm_until
    requests = sum(client.requests for client in clients) - setup_requests
    return {
        "scenario": spec["scenario"],
        "concurrency": concurrency,
        "window_seconds": window,
        "ops": {
            name: {**summarize(samples), "per_second": len(samples) / window}
            for name, samples in rec.samples.items()
            if samples and name not in ("setup_append",)
        },
        "errors": rec.errors,
        "error_examples": rec.error_examples,
        "notes": rec.notes,
        "task_failures": failures[:5],
        "stragglers_cancelled": len(pending),
        "client": {
            "requests": requests,
            "cpu_seconds": cpu,
            "wall_seconds": wall,
            "cpu_us_per_request": cpu / requests * 1e6 if requests else None,
            # Share of the whole machine (all cores) that the load generator itself used.
            "machine_share": cpu / (wall * _cores()) if wall > 0 else None,
        },
    }


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def main(scenarios: dict[str, tuple[Setup, Run]] | None = None) -> int:
    """Read a scenario spec on stdin, print its result as JSON (`python -m bench.load`, or another suite's module)."""
    spec = json.load(sys.stdin)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        runner = asyncio.run
    result = runner(run_scenario(spec, scenarios))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
