"""Concurrent agents writing to a real server while a test breaks something, keeping what was acknowledged.

A writer thread repeats one kind of write until the test stops the load. An answer the server gave (201) is
recorded as acknowledged, with what the agent meant to store; a refused write (4xx/5xx) is counted by status
and retried by the next step; a connection that fails is the server going away. The crash tests then compare
what the server acknowledged with what is in Postgres.

    load = WriteLoad(server.url, headers)
    load.start(message_writer(load, "s1"), checkpoint_writer(load, "s2", patches=True))
    load.wait_for(150)          # acknowledged writes of any kind
    server.kill()
    load.finish()
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

Step = Callable[[httpx.Client], None]


@dataclass(frozen=True)
class SavedCheckpoint:
    session: str
    sequence: int
    checksum: str
    state: dict[str, Any]  # the whole state the agent meant to store at this step


class WriteLoad:
    def __init__(self, url: str, headers: dict[str, str], *, timeout: float = 5, survive_disconnects: bool = False):
        self.url = url
        self.headers = headers
        self.timeout = timeout
        # A killed server ends a writer; a server that stays up through a fault keeps them all writing.
        self.survive_disconnects = survive_disconnects
        self.messages: dict[tuple[str, int], str] = {}  # (session, version) -> message text
        self.checkpoints: dict[str, SavedCheckpoint] = {}  # checkpoint id -> what was saved
        self.statuses: Counter[int | str] = Counter()
        self.refusals: dict[int, str] = {}  # the first body of each refusing status, for assertion messages
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    @property
    def acknowledged(self) -> int:
        return len(self.messages) + len(self.checkpoints)

    def count(self, outcome: int | str) -> None:
        with self.lock:
            self.statuses[outcome] += 1

    def answered(self, response: httpx.Response) -> None:
        self.count(response.status_code)
        if response.status_code >= 400:
            with self.lock:
                self.refusals.setdefault(response.status_code, response.text[:500])

    def start(self, *steps: Step) -> None:
        for step in steps:
            thread = threading.Thread(target=self._run, args=(step,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, step: Step) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=self.timeout) as client:
            while not self.stop.is_set():
                try:
                    step(client)
                except httpx.HTTPError:
                    self.count("disconnected")  # never acknowledged
                    if not self.survive_disconnects:
                        return
                    time.sleep(0.05)

    def wait_for(self, acknowledged: int, *, timeout: float = 30) -> None:
        """Until at least `acknowledged` writes were acknowledged since the start (or the timeout)."""
        deadline = time.monotonic() + timeout
        while self.acknowledged < acknowledged and time.monotonic() < deadline:
            time.sleep(0.02)

    def wait_for_more(self, more: int, *, timeout: float = 30) -> None:
        self.wait_for(self.acknowledged + more, timeout=timeout)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


def message_writer(load: WriteLoad, session_id: str, *, name: str = "writer") -> Step:
    """Appends one chat message per step to the session's context; records (session, version) -> text."""
    sequence = iter(range(10**9))

    def step(client: httpx.Client) -> None:
        text = f"{name} message {next(sequence)}"
        response = client.post(
            f"/api/v1/sessions/{session_id}/context/messages",
            json={"messages": [{"role": "user", "content": text}]},
        )
        load.answered(response)
        if response.status_code == 201:
            version = response.json()["events"][0]["version"]
            with load.lock:
                load.messages[(session_id, version)] = text

    return step


def checkpoint_writer(load: WriteLoad, session_id: str, *, name: str, patches: bool) -> Step:
    """Saves one checkpoint per step, its state growing by a message each time.

    With `patches`, the writer owns the session and sends JSON Patches against its own last save; without, it
    sends full states and the server picks the parent (the latest, whoever saved it: sessions can be shared).
    """
    state: dict[str, Any] = {"writer": name, "messages": []}
    parent: list[str] = []
    steps = iter(range(10**9))

    def step(client: httpx.Client) -> None:
        nonlocal state
        number = next(steps)
        message = {"role": "user", "content": f"{name} step {number} " + "x" * 200}
        body: dict[str, Any] = {"node_id": f"node-{number % 3}"}
        if parent:
            body["parent_id"] = parent[-1]
            body["patch"] = [{"op": "add", "path": "/messages/-", "value": message}]
        else:
            body["state"] = {**state, "messages": [*state["messages"], message]}
        response = client.post(f"/api/v1/sessions/{session_id}/checkpoints", json=body)
        load.answered(response)
        if response.status_code != 201:
            return
        state = {**state, "messages": [*state["messages"], message]}
        saved = response.json()
        with load.lock:
            load.checkpoints[saved["id"]] = SavedCheckpoint(session_id, saved["sequence"], saved["checksum"], state)
        if patches:
            parent.append(saved["id"])

    return step
