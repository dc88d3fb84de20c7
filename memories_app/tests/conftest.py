"""Fixtures for the memory tests: a local OpenAI-compatible server, sessions, and helpers.

The fake server speaks the real protocol (POST /v1/embeddings with float or base64 encoding, POST
/v1/chat/completions) over HTTP on loopback, so the official `openai` client runs unchanged against it.
Its embeddings come from the hashing embedder, so similar texts stay similar.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings

from memories_app.embeddings import reset_embedder
from memories_app.embeddings.hashing import HashingEmbedder
from sessions_app.models import AgentSession
from tests.factories import SessionFactory

FAKE_KEY = "sk-test-not-a-real-key"


@dataclass
class FakeOpenAI:
    """State of the fake server: what it received, and how it should misbehave."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    failing_status: int | None = None  # answer every request with this status
    fail_on_text: str | None = None  # answer 500 to an embeddings request containing this text
    refuse_text: str | None = None  # answer 400, as OpenAI does for a text over the model's context
    max_inputs: int | None = None  # answer 400 to an embeddings request with more inputs than this
    chat_answer: str | None = None
    # Given a well-formed embeddings answer, returns what to send instead (bytes as they are, else as JSON).
    tamper: Callable[[dict[str, Any]], Any] | None = None

    def embeddings_calls(self) -> list[dict[str, Any]]:
        return [request for request in self.requests if request["path"] == "/v1/embeddings"]


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: Any) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            if state.failing_status is not None:
                self._send(state.failing_status, {"error": {"message": "down for the test", "type": "server_error"}})
                return
            if self.path == "/v1/embeddings":
                self._embeddings(body)
            elif self.path == "/v1/chat/completions":
                self._chat(body)
            else:
                self._send(404, {"error": {"message": "no such route"}})

        def _embeddings(self, body: dict[str, Any]) -> None:
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            if state.fail_on_text is not None and any(state.fail_on_text in text for text in inputs):
                self._send(500, {"error": {"message": "cannot embed this", "type": "server_error"}})
                return
            if state.max_inputs is not None and len(inputs) > state.max_inputs:
                message = f"'input' must hold at most {state.max_inputs} items."
                self._send(400, {"error": {"message": message, "type": "invalid_request_error", "code": None}})
                return
            if state.refuse_text is not None and any(state.refuse_text in text for text in inputs):
                message = "This model's maximum context length is 8192 tokens. Please reduce your prompt."
                self._send(400, {"error": {"message": message, "type": "invalid_request_error", "code": None}})
                return
            embedder = HashingEmbedder(body.get("dimensions") or 1536)
            data = []
            for index, vector in enumerate(embedder.embed(inputs)):
                if body.get("encoding_format") == "base64":
                    encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                else:
                    encoded = vector
                data.append({"object": "embedding", "index": index, "embedding": encoded})
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            answer = {"object": "list", "data": data, "model": body["model"], "usage": usage}
            self._send(200, answer if state.tamper is None else state.tamper(answer))

        def _chat(self, body: dict[str, Any]) -> None:
            prompt = body["messages"][-1]["content"]
            answer = state.chat_answer if state.chat_answer is not None else f"LLM: {prompt}"
            self._send(
                200,
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )

    return Handler


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running fake OpenAI server, with the settings pointing the service at it (embeddings and chat)."""
    state = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    with override_settings(
        EMBEDDING_PROVIDER="openai",
        OPENAI_API_KEY=FAKE_KEY,
        OPENAI_BASE_URL=state.base_url,
        OPENAI_CHAT_MODEL="gpt-test",
        OPENAI_MAX_RETRIES=0,
        OPENAI_TIMEOUT_SECONDS=5.0,
    ):
        reset_embedder()
        yield state
    reset_embedder()
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _hashing_by_default() -> Iterator[None]:
    """Unless a test asks for the fake OpenAI server, the deterministic hashing embedder is active."""
    with override_settings(EMBEDDING_PROVIDER="hashing", EMBEDDING_DIMENSIONS=0, OPENAI_CHAT_MODEL=None):
        reset_embedder()
        yield
    reset_embedder()


def make_session(
    world: Any, *, user_id: str = "alice", session_id: str = "s-1", outsider: bool = False
) -> AgentSession:
    tenant = world.outsider.tenant if outsider else world.acme.tenant
    session: AgentSession = SessionFactory.create(tenant=tenant, user_id=user_id, session_id=session_id)
    return session


def create(client: Any, **body: Any) -> Any:
    return client.post("/api/v1/memories", body, format="json")


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Tasks sent with .delay() run at once in the test's process (after commit, with the callbacks run)."""
    from memory_admin.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous
