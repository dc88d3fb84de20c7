from __future__ import annotations

import pytest

from memories_app import background
from memories_app.embeddings import EmbedderUnavailable
from memories_app.models import Memory, MemoryRevision, PromotionJob
from memories_app.tests.conftest import create, make_session


def _session_memories(world, *texts):
    make_session(world, user_id="alice", session_id="s-1")
    return [create(world.acme.client, scope="session", session_id="s-1", content=t).json() for t in texts]


def test_promote_returns_202_and_the_worker_adds_user_memories_after_commit(
    world, eager_celery, django_capture_on_commit_callbacks
):
    _session_memories(world, "Alice's dog is called Rex.", "Alice works night shifts.")

    with django_capture_on_commit_callbacks(execute=True):
        response = world.acme.client.post("/api/v1/sessions/s-1/promote", {}, format="json")

    assert response.status_code == 202, response.json()
    job = world.acme.client.get(f"/api/v1/promotions/{response.json()['id']}").json()
    assert job["status"] == "done" and len(job["created_ids"]) == 2
    user = Memory.objects.filter(scope="user", user_id="alice")
    assert sorted(user.values_list("content", flat=True)) == ["Alice works night shifts.", "Alice's dog is called Rex."]
    assert set(user.values_list("source", flat=True)) == {"promotion"}


def test_promoting_a_near_duplicate_updates_the_existing_user_memory(
    world, eager_celery, django_capture_on_commit_callbacks
):
    existing = create(world.acme.client, scope="user", user_id="alice", content="Alice's dog is called Rex").json()
    _session_memories(world, "Alice's dog is called Rex!")

    with django_capture_on_commit_callbacks(execute=True):
        world.acme.client.post("/api/v1/sessions/s-1/promote", {}, format="json")

    user = Memory.objects.filter(scope="user", user_id="alice")
    assert user.count() == 1
    memory = user.get()
    assert str(memory.pk) == existing["id"] and memory.content == "Alice's dog is called Rex!" and memory.version == 2
    assert MemoryRevision.objects.get(memory=memory).kind == "promotion"


def test_promoting_an_unrelated_text_adds_a_second_memory(world, eager_celery, django_capture_on_commit_callbacks):
    create(world.acme.client, scope="user", user_id="alice", content="Alice's dog is called Rex.")
    _session_memories(world, "Alice is learning the cello.")

    with django_capture_on_commit_callbacks(execute=True):
        world.acme.client.post("/api/v1/sessions/s-1/promote", {}, format="json")

    assert Memory.objects.filter(scope="user", user_id="alice").count() == 2


def test_promote_with_texts_and_chosen_memory_ids_promotes_only_those(
    world, eager_celery, django_capture_on_commit_callbacks
):
    chosen, _ = _session_memories(world, "Alice's dog is called Rex.", "Alice works night shifts.")

    with django_capture_on_commit_callbacks(execute=True):
        response = world.acme.client.post(
            "/api/v1/sessions/s-1/promote",
            {"memory_ids": [chosen["id"]], "texts": ["Alice lives near the harbour."]},
            format="json",
        )

    assert response.status_code == 202
    assert sorted(Memory.objects.filter(scope="user").values_list("content", flat=True)) == [
        "Alice lives near the harbour.",
        "Alice's dog is called Rex.",
    ]


def test_promote_with_texts_alone_promotes_only_those_texts(world, eager_celery, django_capture_on_commit_callbacks):
    # The session's memories are promoted when neither texts nor memory ids are given; texts alone took them too.
    _session_memories(world, "Alice's dog is called Rex.")

    with django_capture_on_commit_callbacks(execute=True):
        response = world.acme.client.post(
            "/api/v1/sessions/s-1/promote", {"texts": ["Alice lives near the harbour."]}, format="json"
        )

    assert response.status_code == 202
    assert list(Memory.objects.filter(scope="user").values_list("content", flat=True)) == [
        "Alice lives near the harbour."
    ]


def test_a_promotion_leaves_the_memory_a_profile_fact_owns_alone(
    world, eager_celery, django_capture_on_commit_callbacks
):
    make_session(world)
    fact = {"facts": {"seat": "Alice prefers window seats on long flights"}}
    with django_capture_on_commit_callbacks(execute=True):
        assert world.acme.client.patch("/api/v1/users/alice/profile", fact, format="json").status_code == 200
    owned = Memory.objects.get(source="profile")

    with django_capture_on_commit_callbacks(execute=True):
        world.acme.client.post(
            "/api/v1/sessions/s-1/promote", {"texts": ["Alice prefers window seats on long flights!"]}, format="json"
        )

    owned.refresh_from_db()
    assert (owned.content, owned.version) == ("Alice prefers window seats on long flights", 1)


def test_running_a_finished_promotion_again_changes_nothing(world, django_capture_on_commit_callbacks):
    _session_memories(world, "Alice's dog is called Rex.")
    with django_capture_on_commit_callbacks(execute=False):
        job_id = world.acme.client.post("/api/v1/sessions/s-1/promote", {}, format="json").json()["id"]

    background.run_promotion(job_id)
    again = background.run_promotion(job_id)

    assert again is None  # the job is done: nobody can claim it
    assert Memory.objects.filter(scope="user").count() == 1


def test_a_retry_after_the_embedder_failed_completes_the_job_exactly_once(
    world, fake_openai, django_capture_on_commit_callbacks
):
    _session_memories(world, "Alice's dog is called Rex.", "Alice works night shifts.")
    with django_capture_on_commit_callbacks(execute=False):
        job_id = world.acme.client.post("/api/v1/sessions/s-1/promote", {}, format="json").json()["id"]
    fake_openai.failing_status = 503

    with pytest.raises(EmbedderUnavailable):
        background.run_promotion(job_id)

    job = PromotionJob.objects.get(pk=job_id)
    assert job.status == "pending" and "503" in job.last_error
    assert not Memory.objects.filter(scope="user").exists()
    fake_openai.failing_status = None
    background.run_promotion(job_id)
    assert PromotionJob.objects.get(pk=job_id).status == "done"
    assert Memory.objects.filter(scope="user").count() == 2


def test_a_promotion_skips_a_text_the_embedder_refuses_and_promotes_the_others(
    world, fake_openai, django_capture_on_commit_callbacks
):
    _session_memories(world, "Alice's dog is called Rex.", "TOO LONG for the model", "Alice works night shifts.")
    with django_capture_on_commit_callbacks(execute=False):
        job_id = world.acme.client.post("/api/v1/sessions/s-1/promote", {}, format="json").json()["id"]
    fake_openai.refuse_text = "TOO LONG"

    background.run_promotion(job_id)  # no EmbedderUnavailable: the task does not retry it

    job = world.acme.client.get(f"/api/v1/promotions/{job_id}").json()
    assert job["status"] == "done" and len(job["created_ids"]) == 2
    assert "refused 1 of the 3 texts" in job["last_error"] and "HTTP 400" in job["last_error"]
    assert PromotionJob.objects.get(pk=job_id).request["refused"] == [1]
    assert sorted(Memory.objects.filter(scope="user").values_list("content", flat=True)) == [
        "Alice works night shifts.",
        "Alice's dog is called Rex.",
    ]


def test_a_promotion_of_texts_the_embedder_all_refuses_fails_instead_of_being_retried(
    world, fake_openai, django_capture_on_commit_callbacks
):
    _session_memories(world, "TOO LONG for the model")
    with django_capture_on_commit_callbacks(execute=False):
        job_id = world.acme.client.post("/api/v1/sessions/s-1/promote", {}, format="json").json()["id"]
    fake_openai.refuse_text = "TOO LONG"

    background.run_promotion(job_id)

    job = world.acme.client.get(f"/api/v1/promotions/{job_id}").json()
    assert job["status"] == "failed" and "HTTP 400" in job["last_error"]
    assert background.run_promotion(job_id) is None and job_id not in background.unfinished_jobs()
    assert not Memory.objects.filter(scope="user").exists()


def test_resume_finds_a_job_whose_worker_lost_its_lease(world, django_capture_on_commit_callbacks):
    _session_memories(world, "Alice's dog is called Rex.")
    with django_capture_on_commit_callbacks(execute=False):
        job_id = world.acme.client.post("/api/v1/sessions/s-1/promote", {}, format="json").json()["id"]
    background.claim_job(job_id)
    assert background.unfinished_jobs() == []
    PromotionJob.objects.filter(pk=job_id).update(claimed_until="2000-01-01T00:00:00Z")

    assert background.unfinished_jobs() == [job_id]


def test_promote_with_a_memory_of_another_session_returns_400(world):
    _session_memories(world, "Alice's dog is called Rex.")
    make_session(world, user_id="alice", session_id="s-2")
    other = create(world.acme.client, scope="session", session_id="s-2", content="Other session.").json()

    response = world.acme.client.post("/api/v1/sessions/s-1/promote", {"memory_ids": [other["id"]]}, format="json")

    assert response.status_code == 400
    assert not PromotionJob.objects.exists()


def test_promote_with_an_empty_text_returns_400(world):
    _session_memories(world)

    response = world.acme.client.post("/api/v1/sessions/s-1/promote", {"texts": [" "]}, format="json")

    assert response.status_code == 400
    assert not PromotionJob.objects.exists()
