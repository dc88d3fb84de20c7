"""`make bench`: start the service on its own embedded Postgres + Redis, drive it, print and save the figures.

    python -m bench                 # quick mode (a few minutes)
    python -m bench --full          # longer windows, more concurrency levels and topologies
    python -m bench --profile       # also sample the web workers with py-spy on the hot paths
    python -m bench --topologies 4x4,2x8   # web workers x threads to compare (the first one is the main run)

The load comes from a separate process (bench/load.py); anchors are measured in this process against the
same Redis and Postgres, before the web server starts so that nothing else competes for the cores.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import anchors, procstat, profiling
from bench.figures import Figure, _meets, _percent, table
from bench.service import HOST, PROFILE_DIR, Server, environment, prepare, results_dir, say, stack_pids
from bench.suites import SUITES, resolve
from memory_admin.embedded import exclusive
from memory_admin.runner import DEFAULT_WEB_THREADS, DEFAULT_WEB_WORKERS, ROOT


@dataclass(frozen=True)
class Mode:
    warmup: float
    duration: float
    sweep_duration: float
    anchor_seconds: float
    agents: tuple[int, ...]
    stream_events: int
    state_reads: int
    topologies: tuple[str, ...]


DEFAULT_TOPOLOGY = f"{DEFAULT_WEB_WORKERS}x{DEFAULT_WEB_THREADS}"  # what `make run` starts

MODES = {
    "quick": Mode(
        warmup=1.0,
        duration=5.0,
        sweep_duration=3.0,
        anchor_seconds=2.0,
        agents=(8, 32),
        stream_events=100_000,
        state_reads=30,
        topologies=tuple(dict.fromkeys((DEFAULT_TOPOLOGY, "2x4", "3x1", "4x1", "3x2"))),
    ),
    "full": Mode(
        warmup=3.0,
        duration=20.0,
        sweep_duration=10.0,
        anchor_seconds=5.0,
        agents=(1, 8, 32, 128),
        stream_events=100_000,
        state_reads=100,
        topologies=tuple(dict.fromkeys((DEFAULT_TOPOLOGY, "2x1", "2x4", "3x1", "3x2", "4x1", "4x2", "6x1", "2x8"))),
    ),
}

STREAM_SESSION = "bench-long-stream-100k-v2"


class Bench:
    def __init__(self, mode: Mode, *, profile: bool, with_worker: bool, topologies: list[str]) -> None:
        self.mode = mode
        self.topologies = topologies
        self.main_topology = topologies[0]
        self.profile = profile
        self.with_worker = with_worker
        self.env: dict[str, str] = {}
        self.key = ""
        self.details: dict[str, Any] = {"scenarios": {}, "topologies": {}, "profiles": {}}
        self.server: Server | None = None

    # --- running one scenario in the load process -----------------------------------------------------

    def load(
        self,
        label: str,
        scenario: str,
        concurrency: int,
        *,
        duration: float | None = None,
        params: dict[str, Any] | None = None,
        profile: bool = False,
        warmup: float | None = None,
        module: str = "bench.load",
    ) -> dict[str, Any]:
        """Run `scenario` from a separate load process (`python -m <module>`) against the running server."""
        assert self.server is not None
        warmup = self.mode.warmup if warmup is None else warmup
        duration = self.mode.duration if duration is None else duration
        spec = {
            "host": HOST,
            "port": self.server.port,
            "key": self.key,
            "scenario": scenario,
            "concurrency": concurrency,
            "warmup": warmup,
            "duration": duration,
            "params": params or {},
        }
        roots = {**self.server.pids(), **stack_pids()}
        cpu_before, busy_before = procstat.cpu_by_tree(roots), procstat.machine_busy_seconds()
        sampler = None
        if profile and self.profile:
            output = results_dir() / f"profile-{self.server.label}-{label}.txt"
            sampler = profiling.start(self.server.processes["web"].pid, output, warmup + duration + 3)
        started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", module],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=warmup + duration + 300,
            check=False,
        )
        wall = time.monotonic() - started
        if completed.returncode != 0:
            raise RuntimeError(f"the load generator failed on {label}: {completed.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(completed.stdout)
        cpu_after, busy_after = procstat.cpu_by_tree(roots), procstat.machine_busy_seconds()
        cpu = {name: cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0) for name in cpu_before}
        cpu["load_generator"] = result.get("client", {}).get("cpu_seconds") or 0.0
        busy = busy_after[0] - busy_before[0]
        total = busy_after[1] - busy_before[1]
        # CPU the machine spent on anything but the service and the load generator (other tenants' jobs).
        cpu["other_processes"] = max(0.0, busy - sum(cpu.values()))
        result["cpu_seconds"] = {name: round(value, 3) for name, value in cpu.items()}
        result["machine_busy_share"] = round(busy / total, 3) if total > 0 else None
        result["wall_seconds"] = round(wall, 2)
        requests = result.get("client", {}).get("requests") or 0
        if requests and "web" in cpu:
            result["web_cpu_ms_per_request"] = round(cpu["web"] / requests * 1000, 3)
        if sampler is not None:
            try:
                sampler.wait(timeout=60)
            except subprocess.TimeoutExpired:
                sampler.kill()
                sampler.wait()
            output = results_dir() / f"profile-{self.server.label}-{label}.txt"
            if output.exists():
                self.details["profiles"][label] = profiling.summarize(output)
        self._check(label, result)
        self.details["scenarios"].setdefault(self.server.label, {})[label] = result
        return result

    @staticmethod
    def _check(label: str, result: dict[str, Any]) -> None:
        if result.get("errors"):
            say(f"{label}: errors {result['errors']} e.g. {result.get('error_examples')}")
        if result.get("task_failures"):
            say(f"{label}: load tasks failed: {result['task_failures']}")

    # --- the whole run ----------------------------------------------------------------------------------

    def run(self, suites: list[str]) -> list[Figure]:
        self.details["background_busy_share"] = background = background_load()
        if background > 0.1:
            say(
                f"WARNING: the machine is {background:.0%} busy before the benchmark starts; "
                "figures will be lower than on a quiet machine (see other_processes in the CPU table)"
            )
        self.env = environment()
        self.key = prepare(self.env)
        figures: list[Figure] = []
        for name in suites:
            say(f"suite {name}")
            figures.extend(resolve(name)(self))
        for figure in figures:
            figure.meets = _meets(figure)
        return figures

    def api_suite(self) -> list[Figure]:
        """Issue 3's figures: hot context, events and state over HTTP, against Redis and Postgres anchors."""
        say("measuring the anchors (redis-py and psycopg against the same servers)")
        seconds, warmup = self.mode.anchor_seconds, min(1.0, self.mode.warmup)
        self.details["anchors"] = {
            "redis": anchors.redis_anchors(self.env["REDIS_URL"], seconds=seconds, warmup=warmup),
            "postgres": anchors.postgres_anchors(
                self.env["DATABASE_URL"], connections=32, seconds=seconds, warmup=warmup
            ),
        }
        main, *others = self.topologies
        self.main_topology = main
        self.with_server(main, self._main_scenarios)
        for topology in others:
            self.with_server(topology, self._sweep_scenarios)
        return self.api_figures()

    def with_server(self, topology: str, body: Any) -> None:
        """Start the web server as `make run` does with WORKERSxTHREADS `topology`, run `body()`, stop it."""
        workers, threads = (int(part) for part in topology.split("x"))
        self.server = Server(workers=workers, threads=threads, with_worker=self.with_worker)
        say(f"starting the web server: granian, {workers} workers x {threads} threads, as `make run` does")
        try:
            self.server.start(self.env)
            body()
        finally:
            self.server.stop()

    def _core(self, profile: bool) -> None:
        label = self.server.label if self.server else "?"
        say(f"[{label}] context appends, 8 clients")
        self.load("append_messages_8", "append_messages", 8, profile=profile, duration=self._d(profile))
        say(f"[{label}] 50-message window reads, 8 clients")
        self.load(
            "read_context_8", "read_context", 8, params={"window": 50}, profile=profile, duration=self._d(profile)
        )
        say(f"[{label}] event appends, 32 sessions")
        self.load("append_events_32", "append_events", 32, profile=profile, duration=self._d(profile))

    def _d(self, main: bool) -> float:
        return self.mode.duration if main else self.mode.sweep_duration

    def _main_scenarios(self) -> None:
        say("load generator overhead: GET /healthz, 8 clients")
        self.load("healthz_8", "healthz", 8)
        self._core(profile=True)
        # Latency as the Redis anchors measure it: one client in a row (at 8 clients a request also waits for
        # the 7 ahead of it on 2 cores: p50 is about 8 / throughput).
        say("context appends and 50-message window reads, one client")
        self.load("append_messages_1", "append_messages", 1)
        self.load("read_context_1", "read_context", 1, params={"window": 50})
        say("50-message window reads right after Redis lost everything (each read rebuilds from Postgres), 8 clients")
        self.load(
            "read_context_rebuilt_8",
            "read_context_rebuilt",
            8,
            params={"window": 50, "sessions": 25, "redis_url": self.env["REDIS_URL"]},
            warmup=0.0,
            duration=60.0,
        )
        for agents in self.mode.agents:
            say(f"agent loop, {agents} agents")
            self.load(f"agent_loop_{agents}", "agent_loop", agents, params={"steps": 10})
        self._state()

    def _sweep_scenarios(self) -> None:
        self.load("healthz_8", "healthz", 8, duration=self.mode.sweep_duration)
        self._core(profile=False)

    def build_stream(
        self, session_id: str, events: int, *, connections: int, what: str, messages_every: int | None = None
    ) -> dict[str, Any]:
        """Append `events` events to `session_id` in batches of 500 from the load process (reusing what a
        previous run built); its report, with `head_version`."""
        assert self.server is not None
        params: dict[str, Any] = {
            "session_id": session_id,
            "events": events,
            "batch": 500,
            "connections": connections,
            "timeout": 600,
        }
        if messages_every is not None:
            params["messages_every"] = messages_every
        spec = {"host": HOST, "port": self.server.port, "key": self.key, "scenario": "build_stream", "params": params}
        completed = subprocess.run(
            [sys.executable, "-m", "bench.load"],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=900,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{what} failed: {completed.stderr[-2000:]}")
        built: dict[str, Any] = json.loads(completed.stdout)
        return built

    def _state(self) -> None:
        assert self.server is not None
        say(f"building a {self.mode.stream_events}-event session (batches of 500; reused by later runs)")
        built = self.build_stream(
            STREAM_SESSION, self.mode.stream_events, connections=2, what="building the long stream"
        )
        self.details["stream"] = built
        if built.get("errors"):
            say(f"stream build errors: {built['errors']} {built.get('error_examples')}")
        head = int(built["head_version"])
        # Let the worker take the snapshot the last batch enqueued, as it would between an agent's steps.
        time.sleep(2.0 if self.with_worker else 0.0)
        say(f"state at the latest version ({head}), one client")
        reads = {
            "session_id": STREAM_SESSION,
            "max_requests": self.mode.state_reads,
            "op": "state_latest",
            "first_op": "state_latest_first",
        }
        # Count-bounded (state_reads reads), no warm-up: the first read is reported on its own.
        self.load("state_latest", "state_reads", 1, duration=30.0, params=reads, profile=True, warmup=0.0)
        travel = head - 37
        say(f"state at version {travel} (time travel between snapshots), one client")
        reads = {**reads, "version": travel, "op": "state_travel", "first_op": "state_travel_first"}
        self.load("state_travel", "state_reads", 1, duration=30.0, params=reads, warmup=0.0)

    # --- figures ----------------------------------------------------------------------------------------

    def _op(self, label: str, op: str, topology: str | None = None) -> dict[str, Any]:
        scenario = self.details["scenarios"].get(topology or self.main_topology, {}).get(label, {})
        result: dict[str, Any] = scenario.get("ops", {}).get(op, {})
        return result

    def api_figures(self) -> list[Figure]:
        redis_anchor = self.details["anchors"]["redis"]
        pg = self.details["anchors"]["postgres"]
        append = self._op("append_messages_8", "context_append")
        read = self._op("read_context_8", "context_read")
        append_one = self._op("append_messages_1", "context_append")
        read_one = self._op("read_context_1", "context_read")
        rebuilt = self._op("read_context_rebuilt_8", "context_read_rebuilt")
        events = self._op("append_events_32", "event_append")
        latest = self._op("state_latest", "state_latest")
        travel = self._op("state_travel", "state_travel")
        healthz = self.details["scenarios"][self.main_topology].get("healthz_8", {})
        first = self._op("state_latest", "state_latest_first")
        rpush, rpush8 = redis_anchor["rpush"], redis_anchor["rpush_8_threads"]
        lrange, lrange8 = redis_anchor["lrange50"], redis_anchor["lrange50_8_threads"]
        insert, txn = pg["insert"], pg["app_shaped_txn"]
        client = healthz.get("client", {})
        figures = [
            Figure(
                "context_append_p50_1c", "ms", append_one.get("p50_ms"), "redis_rpush_p50", rpush["p50_ms"], "<= 1.5"
            ),
            Figure("context_append_p99_1c", "ms", append_one.get("p99_ms"), "redis_rpush_p99", rpush["p99_ms"]),
            Figure(
                "context_read50_p50_1c", "ms", read_one.get("p50_ms"), "redis_lrange50_p50", lrange["p50_ms"], "<= 1.5"
            ),
            Figure("context_read50_p99_1c", "ms", read_one.get("p99_ms"), "redis_lrange50_p99", lrange["p99_ms"]),
            Figure("context_append_p50_8c", "ms", append.get("p50_ms"), "redis_rpush_p50", rpush["p50_ms"]),
            Figure("context_append_p99_8c", "ms", append.get("p99_ms"), "redis_rpush_p99", rpush["p99_ms"]),
            Figure(
                "context_appends_per_s_8c",
                "1/s",
                append.get("per_second"),
                "redis_rpush_per_s_8_threads",
                rpush8["per_second"],
                ">= 2000",
            ),
            Figure("context_read50_p50_8c", "ms", read.get("p50_ms"), "redis_lrange50_p50", lrange["p50_ms"]),
            Figure("context_read50_p99_8c", "ms", read.get("p99_ms"), "redis_lrange50_p99", lrange["p99_ms"]),
            Figure(
                "context_reads_per_s_8c",
                "1/s",
                read.get("per_second"),
                "redis_lrange50_per_s_8_threads",
                lrange8["per_second"],
            ),
            Figure(
                "context_read50_rebuilt_p50_8c",
                "ms",
                rebuilt.get("p50_ms"),
                "context_read50_p50_8c",
                read.get("p50_ms"),
            ),
            Figure(
                "context_read50_rebuilt_p99_8c",
                "ms",
                rebuilt.get("p99_ms"),
                "context_read50_p99_8c",
                read.get("p99_ms"),
            ),
            Figure(
                "event_appends_per_s_32s",
                "1/s",
                events.get("per_second"),
                "pg_insert_per_s_32c",
                insert["per_second"],
                ">= 1500",
            ),
            Figure("event_append_p50_32s", "ms", events.get("p50_ms"), "pg_insert_p50_32c", insert["p50_ms"]),
            Figure("event_append_p99_32s", "ms", events.get("p99_ms"), "pg_insert_p99_32c", insert["p99_ms"], "<= 40"),
            Figure("sql_append_txn_per_s_32c", "1/s", txn["per_second"], "pg_insert_per_s_32c", insert["per_second"]),
            Figure("state_latest_100k_p50", "ms", latest.get("p50_ms"), None, None, "<= 50"),
            Figure("state_latest_100k_first_read", "ms", first.get("p50_ms")),
            Figure("state_travel_100k_p50", "ms", travel.get("p50_ms")),
            Figure("healthz_per_s_8c", "1/s", healthz.get("ops", {}).get("healthz", {}).get("per_second")),
            Figure("load_generator_cpu_us_per_request", "us", client.get("cpu_us_per_request")),
            Figure("load_generator_machine_share_healthz", "%", _percent(client.get("machine_share"))),
        ]
        for agents in self.mode.agents:
            loop = self.details["scenarios"][self.main_topology].get(f"agent_loop_{agents}", {})
            ops = loop.get("ops", {})
            steps = loop.get("notes", {}).get("steps", 0)
            figures.append(
                Figure(f"agent_loop_steps_per_s_{agents}a", "1/s", steps / loop["window_seconds"] if loop else None)
            )
            for op in ("create_session", "context_append", "event_append", "context_read", "state"):
                if op in ops:
                    figures.append(Figure(f"agent_loop_{op}_p50_{agents}a", "ms", ops[op]["p50_ms"]))
                    figures.append(Figure(f"agent_loop_{op}_p99_{agents}a", "ms", ops[op]["p99_ms"]))
        for topology, scenarios in self.details["scenarios"].items():
            for label, op, name in (
                ("append_messages_8", "context_append", "context_appends_per_s_8c"),
                ("read_context_8", "context_read", "context_reads_per_s_8c"),
                ("append_events_32", "event_append", "event_appends_per_s_32s"),
            ):
                rate = scenarios.get(label, {}).get("ops", {}).get(op, {}).get("per_second")
                figures.append(Figure(f"topology_{topology}_{name}", "1/s", rate))
        return figures


def background_load(seconds: float = 2.0) -> float:
    """Share of all cores busy while the benchmark is idle: other work on the machine."""
    busy_before, total_before = procstat.machine_busy_seconds()
    time.sleep(seconds)
    busy_after, total_after = procstat.machine_busy_seconds()
    return (busy_after - busy_before) / max(1e-9, total_after - total_before)


def cpu_table(details: dict[str, Any], topology: str) -> str:
    lines = [f"CPU seconds per scenario ({topology}; 2 cores = 2 s per wall second):"]
    for label, result in details["scenarios"].get(topology, {}).items():
        cpu = result.get("cpu_seconds", {})
        parts = ", ".join(f"{name} {value:.2f}" for name, value in sorted(cpu.items()))
        per = result.get("web_cpu_ms_per_request")
        busy = 100 * (result.get("machine_busy_share") or 0)
        lines.append(
            f"  {label:<18} wall {result.get('wall_seconds', 0):>5.1f}s  busy {busy:>3.0f}%  {parts}"
            + (f"  | web {per:.2f} ms CPU/request" if per else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="longer windows, more concurrency levels and topologies")
    parser.add_argument("--profile", action="store_true", help="sample the web workers with py-spy")
    parser.add_argument("--topologies", help="comma-separated WORKERSxTHREADS; the first is the main run")
    parser.add_argument("--no-worker", action="store_true", help="do not start a Celery worker (no snapshot tasks)")
    parser.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help=f"which suites to run (default: all of {', '.join(SUITES)}); others keep their figures in latest.json",
    )
    args = parser.parse_args(argv)
    suites = args.suites or list(SUITES)
    unknown = [name for name in suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    mode = MODES["full" if args.full else "quick"]
    topologies = args.topologies.split(",") if args.topologies else list(mode.topologies)
    if args.profile and profiling.py_spy() is None:
        say("--profile needs py-spy (pip install -r requirements-dev.txt)")
        return 2

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    with exclusive(PROFILE_DIR / "lock") as acquired:
        if not acquired:
            say("another benchmark is running on var/bench/; wait for it to finish")
            return 1
        bench = Bench(mode, profile=args.profile, with_worker=not args.no_worker, topologies=topologies)
        started = time.monotonic()
        try:
            figures = bench.run(suites)
        except KeyboardInterrupt:
            say("interrupted; the servers under var/bench/ stay up for the next run")
            return 130
        elapsed = time.monotonic() - started
    write_results(bench, figures, suites, elapsed, "full" if args.full else "quick")
    return 0


def _append_rate(details: dict[str, Any], topology: str) -> float:
    """Context appends/s at 8 clients plus event appends/s at 32 sessions: how topologies are ranked."""
    total = 0.0
    for label, op in (("append_messages_8", "context_append"), ("append_events_32", "event_append")):
        total += details["scenarios"][topology].get(label, {}).get("ops", {}).get(op, {}).get("per_second") or 0.0
    return total


def write_results(bench: Bench, figures: list[Figure], suites: list[str], elapsed: float, mode: str) -> None:
    background = bench.details.get("background_busy_share", 0.0)
    print(
        f"agent memory service benchmark ({mode} mode, {elapsed:.0f} s, suites {', '.join(suites)}); "
        f"machine {background:.0%} busy before start"
    )
    if "anchors" in bench.details:
        print(
            f"api: granian WSGI {bench.main_topology.replace('x', ' workers x ')} threads (as `make run`), "
            f"Postgres {bench.details['anchors']['postgres']['settings']}, loopback HTTP/1.1 keep-alive"
        )
    print(table(figures))
    if bench.details["scenarios"].get(bench.main_topology):
        print()
        print(cpu_table(bench.details, bench.main_topology))
    if "anchors" in bench.details:
        best = max(bench.details["scenarios"], key=lambda topology: _append_rate(bench.details, topology))
        bench.details["best_topology"] = best
        compared = ", ".join(bench.topologies)
        print(f"\nbest topology by context+event appends/s: {best} (workers x threads); compared: {compared}")
    for label, summary in bench.details["profiles"].items():
        print(f"\nprofile {label} ({summary['samples']} samples), application frames, inclusive %:")
        for name, percent in summary["application_inclusive_percent"][:12]:
            print(f"  {percent:5.1f}  {name}")
    out = results_dir()
    merged = merge_figures(out / "latest.json", [figure.as_json() for figure in figures])
    (out / "latest.json").write_text(json.dumps(merged, indent=1) + "\n")
    details = {
        "mode": mode,
        "elapsed_seconds": round(elapsed, 1),
        "suites": suites,
        "topologies": bench.topologies,
        "targets": {
            figure.name: {"target": figure.target, "meets": figure.meets} for figure in figures if figure.target
        },
        **bench.details,
    }
    (out / "latest-details.json").write_text(json.dumps(details, indent=1, default=str) + "\n")
    print(f"\nwrote {Path(out / 'latest.json').relative_to(ROOT)} and latest-details.json")


def merge_figures(path: Path, fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's figures replace same-named ones; figures of suites not run this time are kept."""
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        previous = []
    names = {figure["name"] for figure in fresh}
    return [figure for figure in previous if isinstance(figure, dict) and figure.get("name") not in names] + fresh
