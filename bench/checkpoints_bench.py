"""The `checkpoints` suite: the agent loop's checkpoints over HTTP, side by side with LangGraph's PostgresSaver.

Ours: `bench.checkpoints_load` drives the API with 8 and 32 concurrent agents (1 and 128 too with --full).
Each agent saves a checkpoint after every step of a 50-turn conversation (the state grows by one message of
~500 bytes per step) and reads the latest every 10 steps.

Anchor: LangGraph's `PostgresSaver` (pip langgraph-checkpoint-postgres) writes the same states, in this
process, to its own database on the same Postgres server, one thread and one connection per agent, before
the web server starts. It is given what a LangGraph graph gives it: the whole state as channel values, with
a new version for both channels at every step (the message list changed), so it stores the list again.

Bytes stored for one 50-turn conversation are the rows as Postgres stores them: per row, every column's
`pg_column_size` (after Postgres' own compression) plus a 28-byte tuple header and line pointer; indexes
are not counted on either side. The append-only log is the 50 messages as compact JSON, one after another.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from bench import procstat
from bench.checkpoints_load import TURNS, agent_message, state_after
from bench.figures import Figure
from bench.load import summarize
from bench.service import say, stack_pids

if TYPE_CHECKING:
    from bench.cli import Bench

ANCHOR_DATABASE = "bench_langgraph_anchor"
LOAD_MODULE = "bench.checkpoints_load"
READ_EVERY = 10
# Tuple header (23 bytes, aligned to 24) and its 4-byte line pointer, per stored row.
ROW_OVERHEAD = 28


# --- LangGraph's PostgresSaver, in-process ------------------------------------------------------------------


def anchor_url(url: str) -> str:
    """The bench server's URL with the anchor's own database, created when missing."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (ANCHOR_DATABASE,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(ANCHOR_DATABASE)))
    return make_conninfo(url, dbname=ANCHOR_DATABASE)


class LangGraphAgent:
    """One simulated agent writing through its own PostgresSaver and connection, as a graph would."""

    def __init__(self, url: str, name: str) -> None:
        from langgraph.checkpoint.postgres import PostgresSaver

        self.conn = psycopg.Connection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        self.saver = PostgresSaver(self.conn)
        self.name = name
        self.conversations = 0
        self._start()

    def _start(self) -> None:
        self.conversations += 1
        self.thread_id = f"{self.name}-{self.conversations}-{uuid.uuid4().hex[:8]}"
        self.config: Any = {"configurable": {"thread_id": self.thread_id, "checkpoint_ns": ""}}
        self.version: str | None = None
        self.step = 0
        self.pending: Any = None

    def prepare(self) -> None:
        """Build the checkpoint after the next step (a new conversation after TURNS steps), as a graph has it
        in memory before it calls the saver: not part of what is timed."""
        from langgraph.checkpoint.base.id import uuid6

        if self.step == TURNS:
            self._start()
        step = self.step
        self.version = self.saver.get_next_version(self.version, None)
        checkpoint: Any = {
            "v": 2,
            "id": str(uuid6(clock_seq=step)),
            "ts": datetime.now(UTC).isoformat(),
            "channel_values": state_after(step),
            "channel_versions": {"messages": self.version, "step": self.version},
            "versions_seen": {"agent": {"messages": self.version}},
            "pending_sends": [],
            "updated_channels": ["messages", "step"],
        }
        metadata: Any = {"source": "loop", "step": step + 1, "parents": {}}
        versions: Any = {"messages": self.version, "step": self.version}
        self.pending = (self.config, checkpoint, metadata, versions)

    def save(self) -> None:
        """Save the prepared checkpoint through PostgresSaver.put."""
        config, checkpoint, metadata, versions = self.pending
        self.config = self.saver.put(config, checkpoint, metadata, versions)
        self.step += 1

    @property
    def operations(self) -> int:
        return (
            (self.conversations - 1) * TURNS + self.step + ((self.conversations - 1) * TURNS + self.step) // READ_EVERY
        )

    def latest(self) -> Any:
        return self.saver.get_tuple({"configurable": {"thread_id": self.thread_id, "checkpoint_ns": ""}})

    def close(self) -> None:
        self.conn.close()


def _agents_run(url: str, agents: int, *, seconds: float, warmup: float) -> dict[str, Any]:
    """`agents` threads in closed loops of save (and a latest read every READ_EVERY steps)."""
    workers = [LangGraphAgent(url, f"lg-{agents}a-{i}") for i in range(agents)]
    saves: list[list[float]] = [[] for _ in workers]
    reads: list[list[float]] = [[] for _ in workers]
    errors: list[str] = []
    start = time.perf_counter() + 0.2
    warm_until, deadline = start + warmup, start + warmup + seconds

    def body(index: int) -> None:
        agent = workers[index]
        try:
            while time.perf_counter() < start:
                time.sleep(0.001)
            while True:
                agent.prepare()
                began = time.perf_counter()
                if began >= deadline:
                    break
                agent.save()
                ended = time.perf_counter()
                if began >= warm_until and ended <= deadline:
                    saves[index].append(ended - began)
                if agent.step % READ_EVERY == 0:
                    began = time.perf_counter()
                    agent.latest()
                    ended = time.perf_counter()
                    if began >= warm_until and ended <= deadline:
                        reads[index].append(ended - began)
        except Exception as exc:  # reported, not raised: a thread has nowhere to raise to
            errors.append(repr(exc))

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(agents)]
    cpu_before, postgres_before = time.process_time(), _postgres_cpu()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=warmup + seconds + 60)
    finally:
        for agent in workers:
            agent.close()
    cpu, postgres = time.process_time() - cpu_before, _postgres_cpu() - postgres_before
    operations = sum(agent.operations for agent in workers)
    save_samples = [sample for per in saves for sample in per]
    read_samples = [sample for per in reads for sample in per]
    if not save_samples:
        raise RuntimeError(f"the LangGraph anchor saved nothing: {errors[:3]}")
    return {
        "save": {**summarize(save_samples), "per_second": len(save_samples) / seconds},
        "latest": {**summarize(read_samples), "per_second": len(read_samples) / seconds} if read_samples else {},
        "errors": errors[:3],
        # CPU of this process (the savers; building the states is a small part) and of PostgreSQL, per
        # operation (saves and latest reads, warm-up included).
        "cpu_ms_per_operation": {
            "saver_process": round(cpu / operations * 1000, 3) if operations else None,
            "postgres": round(postgres / operations * 1000, 3) if operations else None,
        },
    }


def _postgres_cpu() -> float:
    return procstat.cpu_by_tree({"postgres": stack_pids()["postgres"]}).get("postgres", 0.0)


def langgraph_anchor(url: str, *, agents: tuple[int, ...], seconds: float, warmup: float) -> dict[str, Any]:
    from langgraph.checkpoint.postgres import PostgresSaver

    own = anchor_url(url)
    with PostgresSaver.from_conn_string(own) as saver:
        saver.setup()
    result: dict[str, Any] = {"database": ANCHOR_DATABASE}
    # One conversation of TURNS steps on its own: what it stores, and latest reads of it from one client.
    single = LangGraphAgent(own, "lg-50-turns")
    try:
        for _ in range(TURNS):
            single.prepare()
            single.save()
        result["stored_50_turns"] = stored_bytes(
            own,
            {"checkpoints": "thread_id", "checkpoint_blobs": "thread_id", "checkpoint_writes": "thread_id"},
            single.thread_id,
        )
        for _ in range(20):
            single.latest()
        samples = []
        for _ in range(300):
            began = time.perf_counter()
            found = single.latest()
            samples.append(time.perf_counter() - began)
        assert found is not None and len(found.checkpoint["channel_values"]["messages"]) == TURNS
        result["latest_read"] = summarize(samples)
    finally:
        single.close()
    for count in agents:
        say(f"LangGraph PostgresSaver, {count} agents in-process")
        result[f"agents_{count}"] = _agents_run(own, count, seconds=seconds, warmup=warmup)
    return result


# --- bytes stored -----------------------------------------------------------------------------------------


def stored_bytes(url: str, tables: dict[str, str], key: object) -> dict[str, int]:
    """Per table, the bytes of the rows whose `tables[table]` column equals `key` (see the module docstring)."""
    sizes: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        for table, column in tables.items():
            columns = [
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND table_schema = "
                    "current_schema() ORDER BY ordinal_position",
                    (table,),
                ).fetchall()
            ]
            per_row = sql.SQL(" + ").join(
                sql.SQL("coalesce(pg_column_size({}), 0)").format(sql.Identifier(name)) for name in columns
            )
            query = sql.SQL("SELECT count(*), coalesce(sum({}), 0) FROM {} WHERE {} = %s").format(
                per_row, sql.Identifier(table), sql.Identifier(column)
            )
            row = conn.execute(query, (key,)).fetchone()
            assert row is not None
            sizes[table] = int(row[1]) + ROW_OVERHEAD * int(row[0])
    sizes["total"] = sum(sizes.values())
    return sizes


def our_stored_bytes(url: str, session_id: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT s.id FROM sessions_app_agentsession s JOIN tenants_app_tenant t ON t.id = s.tenant_id "
            "WHERE s.session_id = %s AND t.name = 'bench'",
            (session_id,),
        ).fetchone()
    if row is None:
        raise RuntimeError(f"the 50-turn session {session_id} was not found")
    tables = {"checkpoints_app_checkpoint": "session_id", "checkpoints_app_checkpointhead": "session_id"}
    return stored_bytes(url, tables, row[0])


def log_bytes() -> int:
    """The conversation's messages as an append-only log: compact JSON, one after another."""
    return sum(len(json.dumps(agent_message(i), separators=(",", ":")).encode()) for i in range(TURNS))


# --- the suite --------------------------------------------------------------------------------------------


def checkpoints_suite(bench: Bench) -> list[Figure]:
    mode = bench.mode
    say("LangGraph PostgresSaver anchor (in-process, its own database on the bench Postgres)")
    anchor = langgraph_anchor(
        bench.env["DATABASE_URL"], agents=mode.agents, seconds=mode.anchor_seconds * 2, warmup=min(1.0, mode.warmup)
    )
    bench.details["checkpoints_anchor"] = anchor
    session_id = f"bench-checkpoint-50-turns-{uuid.uuid4().hex[:12]}"

    def scenarios() -> None:
        for agents in mode.agents:
            say(f"checkpoint agents over HTTP, {agents} agents")
            bench.load(
                f"checkpoint_agents_{agents}",
                "checkpoint_agents",
                agents,
                params={"read_every": READ_EVERY},
                profile=agents == 32,
                module=LOAD_MODULE,
            )
        say("latest checkpoint of a 50-turn conversation, one client")
        bench.load(
            "checkpoint_latest",
            "checkpoint_latest",
            1,
            params={"session_id": session_id, "max_requests": 2000},
            duration=30.0,
            warmup=0.5,
            profile=True,
            module=LOAD_MODULE,
        )

    bench.with_server(bench.main_topology, scenarios)
    ours = our_stored_bytes(bench.env["DATABASE_URL"], session_id)
    bench.details["checkpoints_stored"] = {"ours": ours, "langgraph": anchor["stored_50_turns"], "log": log_bytes()}
    return figures(bench, anchor, ours)


def figures(bench: Bench, anchor: dict[str, Any], ours: dict[str, int]) -> list[Figure]:
    scenarios = bench.details["scenarios"].get(bench.main_topology, {})

    def op(label: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = scenarios.get(label, {}).get("ops", {}).get(name, {})
        return found

    result: list[Figure] = []
    for agents in bench.mode.agents:
        save, theirs = op(f"checkpoint_agents_{agents}", "checkpoint_save"), anchor[f"agents_{agents}"]["save"]
        target = ""
        if agents == 32:
            target = ">= 1200"
        elif agents == 8:
            target = f">= {1.3 * theirs['per_second']:.0f}"
        result += [
            Figure(
                f"checkpoint_saves_per_s_{agents}a",
                "1/s",
                save.get("per_second"),
                f"langgraph_saves_per_s_{agents}a",
                theirs["per_second"],
                target,
            ),
            Figure(
                f"checkpoint_save_p50_{agents}a",
                "ms",
                save.get("p50_ms"),
                f"langgraph_save_p50_{agents}a",
                theirs["p50_ms"],
            ),
            Figure(
                f"checkpoint_save_p99_{agents}a",
                "ms",
                save.get("p99_ms"),
                f"langgraph_save_p99_{agents}a",
                theirs["p99_ms"],
                "<= 40" if agents == 32 else "",
            ),
        ]
        # Application CPU per operation, the database left out on both sides (its process tree also does
        # other runs' autovacuum, so its share per request is not reliable here).
        scenario = scenarios.get(f"checkpoint_agents_{agents}", {})
        web, requests = scenario.get("cpu_seconds", {}).get("web"), scenario.get("client", {}).get("requests")
        result.append(
            Figure(
                f"checkpoint_web_cpu_ms_per_request_{agents}a",
                "ms",
                web / requests * 1000 if web is not None and requests else None,
                f"langgraph_saver_cpu_ms_per_op_{agents}a",
                anchor[f"agents_{agents}"]["cpu_ms_per_operation"]["saver_process"],
            )
        )
        read, their_read = op(f"checkpoint_agents_{agents}", "checkpoint_latest"), anchor[f"agents_{agents}"]["latest"]
        result.append(
            Figure(
                f"checkpoint_latest_in_loop_p50_{agents}a",
                "ms",
                read.get("p50_ms"),
                f"langgraph_latest_in_loop_p50_{agents}a",
                their_read.get("p50_ms"),
            )
        )
    latest = op("checkpoint_latest", "checkpoint_latest")
    result += [
        Figure(
            "checkpoint_latest_read_p50",
            "ms",
            latest.get("p50_ms"),
            "langgraph_get_tuple_p50",
            anchor["latest_read"]["p50_ms"],
            "<= 1.5",
        ),
        Figure(
            "checkpoint_latest_read_p99",
            "ms",
            latest.get("p99_ms"),
            "langgraph_get_tuple_p99",
            anchor["latest_read"]["p99_ms"],
        ),
        Figure(
            "checkpoint_bytes_50_turns",
            "KB",
            ours["total"] / 1000,
            "langgraph_bytes_50_turns",
            anchor["stored_50_turns"]["total"] / 1000,
            "<= 40",
        ),
        Figure("checkpoint_log_bytes_50_turns", "KB", log_bytes() / 1000, "append_only_log_of_messages"),
    ]
    return result
