"""Messages whose content is a list of parts (OpenAI, Anthropic and LangChain content blocks), which the context
API accepts: memories read the text of their text parts, in recall (its query, and the texts the context already
says) and in distillation, never the parts' Python representation."""

from __future__ import annotations

from memories_app import background
from memories_app.models import Memory
from memories_app.selectors import message_text
from memories_app.services import request_distillation
from memories_app.tests.conftest import create, make_session
from sessions_app.services import append_messages

PEANUTS = [{"type": "text", "text": "I am allergic to peanuts."}]


def _said(session):
    append_messages(
        session=session,
        messages=[
            {"role": "user", "content": "I live in Porto."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": PEANUTS},
        ],
    )


def test_a_messages_text_is_its_string_content_or_the_text_of_its_text_parts():
    parts = [
        {"type": "text", "text": "Look at this."},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        "A plain string part.",
        {"type": "input_text", "text": "Said through the Responses API."},
        {"type": "text", "text": 42},
        7,
    ]

    assert message_text({"role": "user", "content": "Plain."}) == "Plain."
    assert message_text({"role": "user", "content": parts}) == (
        "Look at this.\nA plain string part.\nSaid through the Responses API."
    )
    assert message_text({"role": "user", "content": [{"type": "image", "source": {}}]}) == ""
    assert message_text({"role": "user", "content": {"text": "an object"}}) == ""
    assert message_text({"role": "tool"}) == ""


def test_recall_without_a_query_ranks_by_the_text_parts_of_the_latest_user_message(world):
    session = make_session(world, user_id="alice", session_id="s-1")
    create(world.acme.client, scope="user", user_id="alice", content="Alice carries an epipen for peanuts.")
    create(world.acme.client, scope="user", user_id="alice", content="Alice moved to Porto last year.")
    _said(session)

    body = world.acme.client.get("/api/v1/sessions/s-1/recall?user_limit=1").json()

    assert body["query"] == "I am allergic to peanuts."
    assert [m["memory"]["content"] for m in body["user_memories"]] == ["Alice carries an epipen for peanuts."]


def test_recall_leaves_out_a_memory_that_a_message_of_content_parts_already_says(world):
    session = make_session(world, user_id="alice", session_id="s-1")
    create(world.acme.client, scope="user", user_id="alice", content="I am allergic to peanuts.")
    _said(session)

    body = world.acme.client.get("/api/v1/sessions/s-1/recall?query=peanuts").json()

    assert [m["memory"]["content"] for m in body["user_memories"]] == []


def test_distillation_keeps_the_text_of_user_messages_made_of_content_parts(world):
    session = make_session(world, user_id="alice", session_id="s-1")
    _said(session)

    job = background.run_promotion(request_distillation(session=session).pk)

    assert job is not None and job.status == "done"
    assert sorted(Memory.objects.filter(user_id="alice").values_list("content", flat=True)) == [
        "I am allergic to peanuts.",
        "I live in Porto.",
    ]
