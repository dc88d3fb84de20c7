"""Load module of the `checkpoints` suite: simulated agents that checkpoint after every step.

    python -m bench.checkpoints_load < spec.json > result.json

Each agent creates a session and runs a conversation of `turns` steps; after each step it saves a checkpoint
whose state holds every message so far (one more message of ~500 bytes per step) and the step number. It
sends only the patch against its parent (the API allows that; LangGraph's saver is given the whole state).
Every `read_every` steps it reads the latest checkpoint back, as an agent does when it resumes. After the
last turn it starts a new conversation in a new session.

The states are the same ones `bench.checkpoints_bench` gives LangGraph's PostgresSaver: `agent_message`
and `state_after` are shared by both sides.
"""

from __future__ import annotations

import functools
import random
import sys
from typing import Any

from bench.load import SESSIONS, Client, ProtocolError, Recorder, Run, Setup, create_session, main

TURNS = 50
MESSAGE_BYTES = 500
_TEXT = (
    "the agent looked up the order and found that the parcel left the warehouse on monday but the carrier "
    "reported a delay because of weather so the customer asked for a refund or a new delivery date and the "
    "assistant explained which options exist what each costs how long it takes and who must approve it"
)
_WORDS = _TEXT.split(" ")


@functools.lru_cache(maxsize=4 * TURNS)
def agent_message(index: int) -> dict[str, Any]:
    """Message `index` of a conversation: user and assistant alternate, ~MESSAGE_BYTES of varied text."""
    rng = random.Random(index)  # noqa: S311 (reproducible text, not a secret)
    words: list[str] = []
    size = 0
    while size < MESSAGE_BYTES:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    role = "user" if index % 2 == 0 else "assistant"
    return {"role": role, "content": " ".join(words), "id": f"msg-{index:04d}"}


def state_after(step: int) -> dict[str, Any]:
    """The agent's state after `step` (0-based): every message so far and the step number."""
    return {"messages": [agent_message(i) for i in range(step + 1)], "step": step + 1}


def node_of(step: int) -> str:
    return "agent" if step % 2 == 0 else "tools"


def checkpoint_body(step: int, parent: str | None, *, full: bool = False) -> dict[str, Any]:
    """What an agent posts after `step`: the first state in full, then patches against its parent."""
    metadata = {"step": step + 1, "source": "loop"}
    if parent is None or full:
        body: dict[str, Any] = {"node_id": node_of(step), "state": state_after(step), "metadata": metadata}
        if parent is not None:
            body["parent_id"] = parent
        return body
    patch = [
        {"op": "add", "path": "/messages/-", "value": agent_message(step)},
        {"op": "replace", "path": "/step", "value": step + 1},
    ]
    return {"node_id": node_of(step), "parent_id": parent, "patch": patch, "metadata": metadata}


def _path(sid: str) -> str:
    return f"{SESSIONS}/{sid}/checkpoints"


async def conversation(
    rec: Recorder, client: Client, sid: str, params: dict[str, Any], *, bounded: bool = True
) -> str | None:
    """Run one conversation in session `sid`; the id of its last checkpoint (None when cut short)."""
    turns, read_every = int(params.get("turns", TURNS)), int(params.get("read_every", 10))
    full = bool(params.get("full"))
    parent: str | None = None
    for step in range(turns):
        if bounded and not rec.running():
            return None
        body = checkpoint_body(step, parent, full=full)
        saved = await rec.call("checkpoint_save", client, "POST", _path(sid), body, expect=(201,))
        if saved is None:
            return None
        parent = str(saved["id"])
        if read_every and (step + 1) % read_every == 0:
            latest = await rec.call("checkpoint_latest", client, "GET", f"{_path(sid)}/latest")
            if latest is not None and latest["id"] != parent:
                rec.note("latest_mismatch")
    return parent


async def _no_setup(rec: Recorder, client: Client, index: int, params: dict[str, Any]) -> Any:
    return None


async def run_agents(rec: Recorder, client: Client, index: int, setup: Any, params: dict[str, Any]) -> None:
    while rec.running():
        sid = (await create_session(rec, client, f"bench-checkpoint-agent-{index}"))["id"]
        await conversation(rec, client, sid, params)


async def _conversation_setup(rec: Recorder, client: Client, index: int, params: dict[str, Any]) -> Any:
    """One full conversation in the session named by params (or a new one): what latest reads read."""
    named = params.get("session_id")
    sid = (await create_session(rec, client, "bench-checkpoint-reader", named))["id"]
    last = await conversation(rec, client, sid, {**params, "read_every": 0}, bounded=False)
    if last is None:
        raise ProtocolError(f"the conversation could not be saved: {rec.error_examples}")
    return sid


async def run_latest_reads(rec: Recorder, client: Client, index: int, sid: Any, params: dict[str, Any]) -> None:
    i = 0
    while rec.running() and i < params["max_requests"]:
        body = await rec.call("checkpoint_latest", client, "GET", f"{_path(sid)}/latest")
        if body is not None and len(body["state"]["messages"]) != int(params.get("turns", TURNS)):
            rec.note("short_state")
        i += 1


SCENARIOS: dict[str, tuple[Setup, Run]] = {
    "checkpoint_agents": (_no_setup, run_agents),
    "checkpoint_latest": (_conversation_setup, run_latest_reads),
}


if __name__ == "__main__":
    sys.exit(main(SCENARIOS))
