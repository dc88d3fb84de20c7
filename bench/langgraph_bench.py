"""The `langgraph` suite: one LangGraph graph, run with AgentMemorySaver over HTTP and with LangGraph's own
PostgresSaver in-process, on the same Postgres server.

The graph is an agent loop: `agent` appends a ~300-byte message and a small scratch dict, `tool` appends its
result, TURNS times, then ends; every superstep is a checkpoint (input + 2 x TURNS steps per run), with the
task writes LangGraph saves between them. Each agent runs the graph on a new thread again and again, with
`graph.invoke` (sync, LangGraph's default durability), for a fixed window after one warm-up run. Steps/s =
checkpoints written per second, over all agents.

Ours: AgentMemorySaver (clients/python) against the bench web server (`make run`'s topology), the same process
as the harness, one saver per agent. Anchor: PostgresSaver, one connection per agent, in this process, to its
own database on the bench Postgres (shared with the `checkpoints` suite's anchor).

Bytes stored for one run of the graph: the rows of that thread as Postgres stores them (every column's
`pg_column_size` plus a 28-byte tuple header and line pointer, indexes not counted), on both sides; ours is
the three langgraph_app tables, theirs checkpoints + checkpoint_blobs + checkpoint_writes.

The store: what a node's `store.get`, `store.put` and `store.search` (a namespace prefix and a filter, ten
items) take, one call after another from one client, AgentMemoryStore over HTTP against LangGraph's
PostgresStore in-process on its own connection (no index on either side: semantic search depends on the
embedder, not on the store).
"""

from __future__ import annotations

import operator
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

import psycopg

from bench.checkpoints_bench import anchor_url, stored_bytes
from bench.figures import Figure
from bench.load import summarize
from bench.service import say

if TYPE_CHECKING:
    from bench.cli import Bench

TURNS = 10
STEPS_PER_RUN = 1 + 2 * TURNS
AGENTS = (1, 4)
MESSAGE = "Looking into the refund for order 1042; the card was charged twice on 3 March. " * 4


class LoopState(TypedDict, total=False):
    messages: Annotated[list[dict[str, Any]], operator.add]
    turn: int
    scratch: dict[str, Any]


def build_graph(checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    def agent(state: LoopState) -> LoopState:
        turn = state.get("turn", 0) + 1
        return {
            "messages": [{"role": "assistant", "content": f"{turn}: {MESSAGE}"}],
            "turn": turn,
            "scratch": {"plan": ["search", "answer"], "turn": turn},
        }

    def tool(state: LoopState) -> LoopState:
        return {"messages": [{"role": "tool", "content": f"result {state['turn']}: 3 hits"}]}

    def route(state: LoopState) -> str:
        return END if state["turn"] >= TURNS else "tool"

    builder = StateGraph(LoopState)
    builder.add_node("agent", agent)
    builder.add_node("tool", tool)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tool", END])
    builder.add_edge("tool", "agent")
    return builder.compile(checkpointer=checkpointer)


def run_once(graph: Any, thread_id: str) -> None:
    result = graph.invoke({"messages": [], "turn": 0}, {"configurable": {"thread_id": thread_id}})
    assert result["turn"] == TURNS and len(result["messages"]) == 2 * TURNS - 1


def agents_run(make_saver: Callable[[int], Any], *, agents: int, seconds: float, prefix: str) -> dict[str, Any]:
    """`agents` threads, each running the graph on new threads for `seconds` after one warm-up run."""
    savers = [make_saver(index) for index in range(agents)]
    graphs = [build_graph(saver) for saver in savers]
    runs = [0] * agents
    errors: list[str] = []
    for index, graph in enumerate(graphs):
        run_once(graph, f"{prefix}-warm-{index}")
    start = time.perf_counter()
    deadline = start + seconds

    def body(index: int) -> None:
        try:
            while time.perf_counter() < deadline:
                run_once(graphs[index], f"{prefix}-{index}-{runs[index]}")
                runs[index] += 1
        except Exception as exc:  # reported, not hidden: a failed run ends that agent
            errors.append(f"{type(exc).__name__}: {exc}"[:300])

    threads = [threading.Thread(target=body, args=(index,)) for index in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for saver in savers:
        close = getattr(saver, "close", None)
        if close is not None:
            close()
    total = sum(runs)
    return {
        "agents": agents,
        "runs": total,
        "steps": total * STEPS_PER_RUN,
        "seconds": round(elapsed, 3),
        "steps_per_s": total * STEPS_PER_RUN / elapsed,
        "errors": errors,
    }


def resume_reads(saver: Any, thread_id: str, *, count: int = 300) -> dict[str, float]:
    """`get_tuple` of a finished run's thread, `count` times in a row after a warm-up: what every
    `graph.invoke` on an existing thread (the next turn of a conversation, a resume) starts with."""
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    for _ in range(20):
        saver.get_tuple(config)
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        found = saver.get_tuple(config)
        samples.append(time.perf_counter() - began)
    assert found is not None and found.checkpoint["channel_values"]["turn"] == TURNS, "not the finished run's state"
    return summarize(samples)


STORE_ITEMS = 50


def store_calls(store: Any, *, count: int = 300) -> dict[str, dict[str, float]]:
    """get, put and search latencies of a BaseStore, `count` calls each in a row after a warm-up, on a
    namespace of STORE_ITEMS items of its own (left behind: each run writes a new one)."""
    user = f"u-{uuid.uuid4().hex[:10]}"
    namespace = ("bench", user, "facts")

    def fact(index: int) -> dict[str, Any]:
        return {"text": MESSAGE[:120], "topic": ("billing", "shipping")[index % 2], "n": index}

    for index in range(STORE_ITEMS):
        store.put(namespace, f"fact-{index}", fact(index))
    calls: dict[str, Callable[[int], Any]] = {
        "get": lambda index: store.get(namespace, f"fact-{index % STORE_ITEMS}"),
        "put": lambda index: store.put(namespace, f"fact-{index % STORE_ITEMS}", fact(index)),
        "search": lambda index: store.search(("bench", user), filter={"topic": "billing"}, limit=10),
    }
    found: dict[str, dict[str, float]] = {}
    for name, call in calls.items():
        for index in range(20):
            call(index)
        samples = []
        for index in range(count):
            began = time.perf_counter()
            call(index)
            samples.append(time.perf_counter() - began)
        found[name] = summarize(samples)
    assert len(store.search(("bench", user), filter={"topic": "billing"}, limit=100)) == STORE_ITEMS // 2
    return found


class _PostgresSaverOnConnection:
    """A PostgresSaver with its own autocommit connection, closed with it."""

    def __init__(self, url: str) -> None:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        self.conn = psycopg.Connection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        self.saver = PostgresSaver(self.conn)

    def close(self) -> None:
        self.conn.close()


def anchor(url: str, *, seconds: float) -> dict[str, Any]:
    from langgraph.checkpoint.postgres import PostgresSaver

    own = anchor_url(url)
    with PostgresSaver.from_conn_string(own) as setup:
        setup.setup()
    result: dict[str, Any] = {}
    single = _PostgresSaverOnConnection(own)
    thread_id = f"lg-bench-bytes-{uuid.uuid4().hex[:12]}"
    try:
        run_once(build_graph(single.saver), thread_id)
        result["resume_read"] = resume_reads(single.saver, thread_id)
    finally:
        single.close()
    tables = {"checkpoints": "thread_id", "checkpoint_blobs": "thread_id", "checkpoint_writes": "thread_id"}
    result["stored_one_run"] = stored_bytes(own, tables, thread_id)
    result["store"] = _postgres_store_calls(own)
    holders: list[_PostgresSaverOnConnection] = []

    def make(index: int) -> Any:
        holder = _PostgresSaverOnConnection(own)
        holders.append(holder)
        return holder.saver

    for agents in AGENTS:
        say(f"LangGraph PostgresSaver, {agents} agent(s) in-process")
        result[f"agents_{agents}"] = agents_run(
            make, agents=agents, seconds=seconds, prefix=f"pg-{uuid.uuid4().hex[:8]}"
        )
        for holder in holders:
            holder.close()
        holders.clear()
    return result


def _postgres_store_calls(url: str) -> dict[str, dict[str, float]]:
    from langgraph.store.postgres import PostgresStore
    from psycopg.rows import dict_row

    say("LangGraph PostgresStore: get, put, search in-process")
    with psycopg.Connection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row) as conn:
        store = PostgresStore(conn)
        store.setup()
        return store_calls(store)


def ours(bench: Bench, *, seconds: float) -> dict[str, Any]:
    from agent_memory_client.checkpoint import AgentMemorySaver
    from agent_memory_client.store import AgentMemoryStore

    assert bench.server is not None
    base_url = f"http://127.0.0.1:{bench.server.port}"
    result: dict[str, Any] = {}
    thread_id = f"lg-bench-bytes-{uuid.uuid4().hex[:12]}"
    saver = AgentMemorySaver(base_url=base_url, api_key=bench.key)
    try:
        run_once(build_graph(saver), thread_id)
        result["resume_read"] = resume_reads(saver, thread_id)
    finally:
        saver.close()
    with psycopg.connect(bench.env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT s.id FROM sessions_app_agentsession s JOIN tenants_app_tenant t ON t.id = s.tenant_id "
            "WHERE s.session_id = %s AND t.name = 'bench'",
            (thread_id,),
        ).fetchone()
    assert row is not None, "the thread's session was not found"
    tables = {
        "langgraph_app_threadcheckpoint": "session_id",
        "langgraph_app_channelblob": "session_id",
        "langgraph_app_pendingwrite": "session_id",
    }
    result["stored_one_run"] = stored_bytes(bench.env["DATABASE_URL"], tables, row[0])
    say("AgentMemoryStore over HTTP: get, put, search")
    store = AgentMemoryStore(base_url=base_url, api_key=bench.key)
    try:
        result["store"] = store_calls(store)
    finally:
        store.client.close()
    for agents in AGENTS:
        say(f"AgentMemorySaver over HTTP, {agents} agent(s)")
        result[f"agents_{agents}"] = agents_run(
            lambda index: AgentMemorySaver(base_url=base_url, api_key=bench.key),
            agents=agents,
            seconds=seconds,
            prefix=f"lg-{uuid.uuid4().hex[:8]}",
        )
    return result


def langgraph_suite(bench: Bench) -> list[Figure]:
    seconds = max(3.0, bench.mode.duration)
    say("LangGraph graph with PostgresSaver (in-process, its own database on the bench Postgres)")
    theirs = anchor(bench.env["DATABASE_URL"], seconds=seconds)
    found: dict[str, Any] = {}

    def scenarios() -> None:
        found.update(ours(bench, seconds=seconds))

    bench.with_server(bench.main_topology, scenarios)
    bench.details["langgraph"] = {"ours": found, "postgres_saver": theirs}
    figures: list[Figure] = []
    for agents in AGENTS:
        mine, anchor_run = found[f"agents_{agents}"], theirs[f"agents_{agents}"]
        figures.append(
            Figure(
                f"langgraph_steps_per_s_{agents}a",
                "1/s",
                mine["steps_per_s"] if not mine["errors"] else None,
                f"postgres_saver_steps_per_s_{agents}a",
                anchor_run["steps_per_s"],
                f">= {0.7 * anchor_run['steps_per_s']:.1f}",
            )
        )
    figures.append(
        Figure(
            "langgraph_resume_read_p50",
            "ms",
            found["resume_read"]["p50_ms"],
            "postgres_saver_resume_read_p50",
            theirs["resume_read"]["p50_ms"],
            "<= 1.5",  # as the service's own latest-checkpoint read (issue 4)
        )
    )
    for call in ("get", "put", "search"):
        figures.append(
            Figure(
                f"langgraph_store_{call}_p50",
                "ms",
                found["store"][call]["p50_ms"],
                f"postgres_store_{call}_p50",
                theirs["store"][call]["p50_ms"],
            )
        )
    mine_bytes, their_bytes = found["stored_one_run"]["total"], theirs["stored_one_run"]["total"]
    figures.append(
        Figure(
            "langgraph_bytes_per_run",
            "B",
            mine_bytes,
            "postgres_saver_bytes_per_run",
            their_bytes,
            f"<= {their_bytes}",
        )
    )
    return figures
