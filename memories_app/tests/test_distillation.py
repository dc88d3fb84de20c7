from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from lifecycle_app.archival import claim_inactive_sessions
from memories_app import background
from memories_app.models import Memory, PromotionJob
from memories_app.tasks import distill_completed_sessions
from memories_app.tests.conftest import create, make_session
from memories_app.text import extractive_summary
from sessions_app.models import AgentSession, SessionStatus


def _completed_session(world):
    session = make_session(world, user_id="alice", session_id="s-1")
    for text in ("Alice's daughter plays football. The weather was nice.", "Alice's daughter has a match on Sunday."):
        create(world.acme.client, scope="session", session_id="s-1", content=text)
    session.status = SessionStatus.COMPLETED
    session.save()
    return session


def test_a_completed_session_is_distilled_once_into_the_user_scope(world, django_capture_on_commit_callbacks):
    _completed_session(world)

    with django_capture_on_commit_callbacks(execute=False):
        distill_completed_sessions()
        distill_completed_sessions()

    job = PromotionJob.objects.get(kind="distill")
    background.run_promotion(job.pk)
    distilled = set(
        Memory.objects.filter(scope="user", user_id="alice", source="distillation").values_list("content", flat=True)
    )
    assert {"Alice's daughter plays football.", "Alice's daughter has a match on Sunday."} <= distilled
    assert PromotionJob.objects.get(kind="distill").status == "done"


def test_the_extractive_summary_prefers_sentences_about_the_sessions_main_topic():
    texts = ["Alice's daughter plays football. The weather was nice.", "Alice's daughter has a match on Sunday."]

    assert extractive_summary(texts, max_sentences=2) == [
        "Alice's daughter plays football.",
        "Alice's daughter has a match on Sunday.",
    ]


def test_distillation_uses_the_language_model_when_configured(world, fake_openai, django_capture_on_commit_callbacks):
    _completed_session(world)
    fake_openai.chat_answer = "- Alice's daughter plays football.\n- The match is on Sunday."

    with django_capture_on_commit_callbacks(execute=False):
        distill_completed_sessions()
    background.run_promotion(PromotionJob.objects.get(kind="distill").pk)

    assert sorted(Memory.objects.filter(source="distillation").values_list("content", flat=True)) == [
        "Alice's daughter plays football.",
        "The match is on Sunday.",
    ]


def test_distillation_keeps_the_facts_the_embedder_takes_when_it_refuses_one(
    world, fake_openai, django_capture_on_commit_callbacks
):
    _completed_session(world)
    # A summary line over the model's context (a pasted document the language model repeated).
    fake_openai.chat_answer = "- Alice lives in Porto.\n- PASTED-DOCUMENT lorem ipsum\n- Alice is allergic to peanuts."
    fake_openai.refuse_text = "PASTED-DOCUMENT"

    with django_capture_on_commit_callbacks(execute=False):
        distill_completed_sessions()
    job = background.run_promotion(PromotionJob.objects.get(kind="distill").pk)

    assert job is not None and job.status == "done"
    assert "refused 1 of the 3 texts" in job.last_error and "maximum context length" in job.last_error
    assert sorted(Memory.objects.filter(source="distillation").values_list("content", flat=True)) == [
        "Alice is allergic to peanuts.",
        "Alice lives in Porto.",
    ]


def test_an_active_session_is_not_distilled(world):
    make_session(world, session_id="s-active")

    distill_completed_sessions()

    assert not PromotionJob.objects.exists()


def test_a_session_completed_and_archived_before_the_sweep_ran_is_distilled(world, django_capture_on_commit_callbacks):
    session = make_session(world, user_id="alice", session_id="s-1")
    create(world.acme.client, scope="session", session_id="s-1", content="Alice is allergic to peanuts.")
    for status in (SessionStatus.COMPLETED, SessionStatus.ARCHIVED):
        response = world.acme.client.patch("/api/v1/sessions/s-1", {"status": status}, format="json")
        assert response.status_code == 200, response.json()

    with django_capture_on_commit_callbacks(execute=False):
        distill_completed_sessions()
        distill_completed_sessions()

    job = PromotionJob.objects.get(kind="distill", session=session)
    background.run_promotion(job.pk)
    distilled = Memory.objects.filter(scope="user", user_id="alice", source="distillation")
    assert list(distilled.values_list("content", flat=True)) == ["Alice is allergic to peanuts."]


@pytest.mark.parametrize("before", [SessionStatus.FAILED, SessionStatus.ACTIVE, SessionStatus.PAUSED])
def test_a_session_archived_without_having_completed_is_not_distilled(world, before):
    make_session(world, session_id="s-unfinished")
    if before != SessionStatus.ACTIVE:
        response = world.acme.client.patch("/api/v1/sessions/s-unfinished", {"status": before}, format="json")
        assert response.status_code == 200, response.json()
    response = world.acme.client.patch("/api/v1/sessions/s-unfinished", {"status": "archived"}, format="json")
    assert response.status_code == 200, response.json()

    distill_completed_sessions()

    assert AgentSession.objects.get(session_id="s-unfinished").archived_from == before
    assert not PromotionJob.objects.exists()


def test_a_session_archived_long_ago_is_not_distilled(world):
    session = make_session(world, session_id="s-old")
    AgentSession.objects.filter(pk=session.pk).update(
        status=SessionStatus.ARCHIVED,
        updated_at=timezone.now() - background.DISTILL_ARCHIVED_WITHIN - timedelta(hours=1),
    )

    distill_completed_sessions()

    assert not PromotionJob.objects.exists()


def test_a_session_the_lifecycle_archived_for_want_of_use_is_not_distilled(world):
    session = make_session(world, session_id="s-idle")
    AgentSession.objects.filter(pk=session.pk).update(last_activity_at=timezone.now() - timedelta(days=100))

    assert claim_inactive_sessions(world.acme.tenant.pk, cutoff=timezone.now(), limit=10) == [session.pk]
    distill_completed_sessions()

    assert AgentSession.objects.get(pk=session.pk).archived_from == SessionStatus.ACTIVE

    assert not PromotionJob.objects.exists()
