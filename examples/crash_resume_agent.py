"""An agent that survives a crash: LangGraph with AgentMemorySaver, the agent memory service as its memory.

The graph fans out to two branches that run in parallel (`fast` and `slow`), joins them in `review`, which
asks a person for approval (an interrupt), and ends in `finish`. Every checkpoint and every finished task's
writes are stored in the service, so a process killed in the middle of `slow` resumes in a new process
without running `fast` again, and an interrupt answered by yet another process completes the run.

    export AGENT_MEMORY_URL=http://127.0.0.1:8000 AGENT_MEMORY_KEY=mk_...
    python examples/crash_resume_agent.py start  THREAD MARKS   # runs until killed in `slow` (with CRASH=1)
    python examples/crash_resume_agent.py resume THREAD MARKS   # re-runs `slow` only, stops at the interrupt
    python examples/crash_resume_agent.py answer THREAD MARKS   # answers the interrupt; the run completes

MARKS is a file each node appends a line to when it starts and ends, so a test can tell what ran where.
Switching from LangGraph's PostgresSaver is the one line that builds the checkpointer.
"""

from __future__ import annotations

import json
import operator
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from agent_memory_client.checkpoint import AgentMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt


class State(TypedDict, total=False):
    topic: str
    findings: Annotated[list[str], operator.add]
    approved: bool
    summary: str


def _mark(marks: Path, text: str) -> None:
    with marks.open("a") as handle:
        handle.write(f"{text} {os.getpid()}\n")
        handle.flush()
        os.fsync(handle.fileno())


def build(saver: AgentMemorySaver, marks: Path) -> Any:
    def plan(state: State) -> State:
        _mark(marks, "plan:done")
        return {"findings": [f"plan for {state['topic']}"]}

    def fast(state: State) -> State:
        _mark(marks, "fast:start")
        _mark(marks, "fast:done")
        return {"findings": ["fast result"]}

    def slow(state: State) -> State:
        _mark(marks, "slow:start")
        if os.environ.get("CRASH") == "1":
            # Give `fast`'s writes time to reach the service, then wait to be killed mid-node.
            while "fast:done" not in marks.read_text():
                time.sleep(0.05)
            time.sleep(0.5)
            _mark(marks, "slow:waiting-to-be-killed")
            time.sleep(120)
        _mark(marks, "slow:done")
        return {"findings": ["slow result"]}

    def review(state: State) -> State:
        _mark(marks, "review:start")
        answer = interrupt({"question": "Publish these findings?", "findings": state["findings"]})
        _mark(marks, "review:done")
        return {"approved": bool(answer)}

    def finish(state: State) -> State:
        _mark(marks, "finish:done")
        return {"summary": f"{len(state['findings'])} findings, approved={state['approved']}"}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("fast", fast)
    builder.add_node("slow", slow)
    builder.add_node("review", review)
    builder.add_node("finish", finish)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "fast")
    builder.add_edge("plan", "slow")
    builder.add_edge(["fast", "slow"], "review")
    builder.add_edge("review", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=saver)


def main(argv: list[str]) -> int:
    phase, thread_id, marks = argv[1], argv[2], Path(argv[3])
    # The one line that makes the service the graph's memory (instead of PostgresSaver.from_conn_string(...)).
    saver = AgentMemorySaver(base_url=os.environ["AGENT_MEMORY_URL"], api_key=os.environ["AGENT_MEMORY_KEY"])
    graph = build(saver, marks)
    config = {"configurable": {"thread_id": thread_id}}
    if phase == "start":
        result = graph.invoke({"topic": "refunds", "findings": []}, config)
    elif phase == "resume":
        result = graph.invoke(None, config)
    elif phase == "answer":
        result = graph.invoke(Command(resume=True), config)
    else:
        raise SystemExit(f"unknown phase {phase!r}")
    interrupts = [item.value for item in result.get("__interrupt__", [])]
    state = {key: value for key, value in result.items() if key != "__interrupt__"}
    print(json.dumps({"state": state, "interrupts": interrupts, "next": list(graph.get_state(config).next)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
