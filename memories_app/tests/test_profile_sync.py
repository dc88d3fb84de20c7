"""User profiles, and learned facts flowing into the user's memories through the transactional outbox."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from memories_app import background
from memories_app.embeddings import EmbedderUnavailable
from memories_app.models import Memory, ProfileFactOutbox
from memories_app.services import hide_owner
from memory_admin.health import redis_client


def patch(client, body, **headers):
    return client.patch("/api/v1/users/alice/profile", body, format="json", **headers)


def drain():
    while background.apply_next_outbox_entry():
        pass


def profile_memories():
    return Memory.objects.alive().filter(user_id="alice", source="profile")


def test_first_patch_creates_the_profile_at_version_1(world):
    response = patch(world.acme.client, {"preferences": {"theme": "dark"}, "record_interaction": True})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["version"] == 1 and body["preferences"] == {"theme": "dark"} and body["interaction_count"] == 1
    assert response["ETag"] == '"1"'
    assert world.acme.client.get("/api/v1/users/alice/profile").json()["preferences"] == {"theme": "dark"}


def test_patch_merges_preferences_and_null_removes_a_key(world):
    patch(world.acme.client, {"preferences": {"theme": "dark", "lang": "nb"}})

    body = patch(world.acme.client, {"preferences": {"theme": None, "units": "metric"}}).json()

    assert body["preferences"] == {"lang": "nb", "units": "metric"} and body["version"] == 2


def test_patch_with_stale_if_match_returns_412_with_the_current_profile(world):
    patch(world.acme.client, {"preferences": {"theme": "dark"}})
    patch(world.acme.client, {"preferences": {"theme": "light"}})

    response = patch(world.acme.client, {"preferences": {"theme": "blue"}}, HTTP_IF_MATCH='"1"')

    assert response.status_code == 412
    assert response.json()["error"]["details"]["current"]["preferences"] == {"theme": "light"}


def test_patch_with_if_match_star_of_a_profile_that_does_not_exist_returns_412_and_creates_nothing(world):
    # RFC 9110: `*` is false when there is no current representation; it used to create the profile.
    response = patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}}, HTTP_IF_MATCH="*")

    assert response.status_code == 412
    assert response.json()["error"]["code"] == "precondition_failed"
    assert world.acme.client.get("/api/v1/users/alice/profile").status_code == 404
    assert not ProfileFactOutbox.objects.exists()


@pytest.mark.parametrize("if_match", ['"0"', '"1"', '"0", "1"'])
def test_patch_with_an_if_match_version_of_a_profile_that_does_not_exist_returns_412_and_creates_nothing(
    world, if_match
):
    # RFC 9110: If-Match never matches a resource that does not exist. "0" (never given out: profiles start at
    # version 1) matched the placeholder row the update locks, and created the profile.
    response = patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}}, HTTP_IF_MATCH=if_match)

    assert response.status_code == 412
    assert response.json()["error"]["details"]["current_version"] is None
    assert world.acme.client.get("/api/v1/users/alice/profile").status_code == 404
    assert not ProfileFactOutbox.objects.exists()


def test_patch_with_if_match_star_of_an_existing_profile_updates_it(world):
    patch(world.acme.client, {"preferences": {"theme": "dark"}})

    response = patch(world.acme.client, {"preferences": {"theme": "light"}}, HTTP_IF_MATCH="*")

    assert response.status_code == 200 and response.json()["version"] == 2


@pytest.mark.parametrize("user_id", ["org/alice", "x/profile", "a/b/c/", "line\nbreak"])
def test_a_user_id_with_slashes_has_a_profile_at_its_percent_encoded_address(world, user_id):
    # A "/" in the id made the profile route a 404 "No such endpoint", while memories and sessions took it.
    address = f"/api/v1/users/{quote(user_id, safe='')}/profile"
    client = world.acme.client

    created = client.patch(address, {"facts": {"drink": "Likes tea."}}, format="json")
    drain()

    assert created.status_code == 200, created.json()
    assert created.json()["user_id"] == user_id
    assert client.get(address).json()["facts"] == {"drink": "Likes tea."}
    assert Memory.objects.alive().get(source="profile").user_id == user_id
    listed = client.get("/api/v1/memories", {"user_id": user_id}).json()["results"]
    assert [memory["content"] for memory in listed] == ["Likes tea."]


def test_an_added_fact_becomes_one_user_memory_after_the_drain(world, eager_celery, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}})

    assert list(profile_memories().values_list("content", flat=True)) == ["Alice is vegetarian."]
    assert not ProfileFactOutbox.objects.filter(processed_at__isnull=True).exists()


def test_a_changed_fact_updates_its_memory_and_a_removed_fact_deletes_it(world):
    patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}})
    drain()
    memory_id = profile_memories().get().pk

    patch(world.acme.client, {"facts": {"diet": "Alice is vegan."}})
    drain()
    assert profile_memories().get().pk == memory_id
    assert profile_memories().get().content == "Alice is vegan."

    patch(world.acme.client, {"facts": {"diet": None}})
    drain()
    assert not profile_memories().exists()


def test_a_memory_that_mirrors_a_fact_is_changed_through_the_profile_not_on_its_own(world):
    # Edited or deleted on its own it disagreed with the profile, until the fact's next change overwrote it or
    # brought it back.
    patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}})
    drain()
    memory = profile_memories().get()
    url = f"/api/v1/memories/{memory.pk}"

    edited = world.acme.client.patch(url, {"content": "Alice eats meat."}, format="json")
    deleted = world.acme.client.delete(url)

    for response in (edited, deleted):
        assert response.status_code == 409, response.json()
        error = response.json()["error"]
        assert error["details"] == {"memory_id": str(memory.pk), "user_id": "alice", "profile_fact": "diet"}
    unchanged = profile_memories().get()
    assert (unchanged.content, unchanged.version) == ("Alice is vegetarian.", memory.version)
    patch(world.acme.client, {"facts": {"diet": None}})
    drain()
    assert world.acme.client.get(url).status_code == 404


def test_draining_twice_applies_each_fact_exactly_once(world):
    patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian.", "pet": "Alice has a dog."}})

    drain()
    drain()

    assert profile_memories().count() == 2


def test_facts_still_reach_memories_after_redis_is_flushed_before_the_worker_runs(world):
    patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}})
    redis_client().flushdb()  # the broker's message is gone; the outbox row in Postgres is not

    drain()

    assert profile_memories().count() == 1


def test_a_worker_failing_mid_way_leaves_the_entry_for_a_retry_that_applies_it_once(world, fake_openai):
    patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian.", "pet": "Alice has a dog."}})
    fake_openai.fail_on_text = "dog"

    with pytest.raises(EmbedderUnavailable):
        drain()

    assert list(profile_memories().values_list("content", flat=True)) == ["Alice is vegetarian."]
    failed = ProfileFactOutbox.objects.get(fact_key="pet")
    assert failed.processed_at is None and failed.attempts == 1
    fake_openai.fail_on_text = None
    drain()
    drain()
    assert sorted(profile_memories().values_list("content", flat=True)) == ["Alice has a dog.", "Alice is vegetarian."]


def test_a_fact_set_to_its_current_text_writes_no_outbox_entry(world):
    patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}})

    patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}})

    assert ProfileFactOutbox.objects.count() == 1


def test_patch_with_an_empty_fact_returns_400_and_stores_nothing(world):
    response = patch(world.acme.client, {"facts": {"diet": "  "}})

    assert response.status_code == 400
    assert not ProfileFactOutbox.objects.exists()
    assert world.acme.client.get("/api/v1/users/alice/profile").status_code == 404


def test_get_profile_of_an_unknown_user_returns_404(world):
    assert world.acme.client.get("/api/v1/users/nobody/profile").status_code == 404


def test_a_fact_of_a_person_whose_erasure_was_approved_does_not_hold_up_the_outbox(world):
    # Their mirrored memory is hidden, not gone: writing the fact again collided with its key, and the error
    # kept every later entry, of every tenant, from being applied until the purge ran.
    patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}})
    drain()
    hide_owner(tenant=world.acme.tenant, user_id="alice")
    patch(world.acme.client, {"facts": {"diet": "Alice eats fish now."}})
    bob = {"facts": {"city": "Bob lives in Porto."}}
    assert world.outsider.client.patch("/api/v1/users/bob/profile", bob, format="json").status_code == 200

    drain()

    assert not ProfileFactOutbox.objects.filter(processed_at__isnull=True).exists()
    assert Memory.objects.alive().filter(user_id="bob", source="profile").count() == 1
    assert Memory._base_manager.get(user_id="alice", source="profile").content == "Alice is vegetarian."


@pytest.mark.django_db(transaction=True)
def test_a_profile_change_answers_once_and_is_applied_once_when_the_broker_is_down(world):
    # The outbox's doorbell rang after commit without a guard: a down broker made a stored change a 500, and
    # the client's retry with the same Idempotency-Key applied it again.
    from tests.servers import running, web_server

    headers = {"Authorization": f"Bearer {world.acme.raw_key}", "Idempotency-Key": "profile-once"}
    body = {"facts": {"diet": "Alice is vegetarian."}, "record_interaction": True}
    with (
        running(web_server(workers=1, threads=2, env={"CELERY_BROKER_URL": "redis://127.0.0.1:1/0"})) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=10) as client,
    ):
        first = client.patch("/api/v1/users/alice/profile", json=body)
        again = client.patch("/api/v1/users/alice/profile", json=body)

    assert first.status_code == 200, first.text
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["version"] == 1 and again.json()["interaction_count"] == 1


def test_a_fact_the_embedder_refuses_for_good_is_set_aside_and_later_facts_of_every_tenant_are_applied(
    world, fake_openai
):
    # Applied strictly in order and re-raised, the refused entry was retried for ever and held up every later
    # entry of every tenant.
    patch(world.acme.client, {"facts": {"bio": "TOO LONG for the model"}})
    bob = {"facts": {"city": "Bob lives in Porto."}}
    assert world.outsider.client.patch("/api/v1/users/bob/profile", bob, format="json").status_code == 200
    fake_openai.refuse_text = "TOO LONG"

    drain()

    refused = ProfileFactOutbox.objects.get(fact_key="bio")
    assert refused.processed_at is not None and refused.failed_at is not None and refused.attempts == 1
    assert "HTTP 400" in refused.last_error and "maximum context length" in refused.last_error
    assert not profile_memories().exists()
    assert Memory.objects.alive().filter(user_id="bob", source="profile").count() == 1
    calls = len(fake_openai.embeddings_calls())
    drain()
    assert len(fake_openai.embeddings_calls()) == calls  # not retried


def test_an_entry_that_keeps_failing_on_its_own_is_set_aside_after_the_most_attempts_once_it_has_waited(
    world, monkeypatch
):
    patch(world.acme.client, {"facts": {"pet": "Alice has a dog."}})
    patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}})
    apply_fact = background._apply_fact

    def poisoned(entry):  # an error only this entry meets, whatever its cause
        if entry.fact_key == "pet":
            raise RuntimeError("this entry cannot be applied")
        apply_fact(entry)

    monkeypatch.setattr(background, "_apply_fact", poisoned)
    stuck = ProfileFactOutbox.objects.get(fact_key="pet")
    ProfileFactOutbox.objects.filter(pk=stuck.pk).update(attempts=background.OUTBOX_MAX_ATTEMPTS - 1)

    with pytest.raises(RuntimeError):
        drain()  # written just now: it may yet succeed, so the entry waits

    stuck.refresh_from_db()
    assert stuck.processed_at is None and stuck.attempts == background.OUTBOX_MAX_ATTEMPTS
    waited = stuck.created_at - background.OUTBOX_RETRY_WINDOW
    ProfileFactOutbox.objects.filter(pk=stuck.pk).update(created_at=waited)

    drain()

    stuck.refresh_from_db()
    assert stuck.failed_at is not None and "RuntimeError: this entry cannot be applied" in stuck.last_error
    assert list(profile_memories().values_list("content", flat=True)) == ["Alice is vegetarian."]


def test_an_embedder_outage_sets_no_entry_aside_however_long_it_lasts(world, fake_openai):
    # Every entry fails alike during an outage: setting the oldest aside after its attempts lost its fact for
    # good, and then the next one's.
    patch(world.acme.client, {"facts": {"pet": "Alice has a dog."}})
    fake_openai.fail_on_text = "dog"  # a 500: an outage, as far as anyone can tell
    stuck = ProfileFactOutbox.objects.get(fact_key="pet")
    long_ago = stuck.created_at - 10 * background.OUTBOX_RETRY_WINDOW
    ProfileFactOutbox.objects.filter(pk=stuck.pk).update(
        attempts=10 * background.OUTBOX_MAX_ATTEMPTS, created_at=long_ago
    )

    with pytest.raises(EmbedderUnavailable):
        drain()

    stuck.refresh_from_db()
    assert stuck.processed_at is None and stuck.failed_at is None and "HTTP 500" in stuck.last_error
    fake_openai.fail_on_text = None
    drain()
    assert list(profile_memories().values_list("content", flat=True)) == ["Alice has a dog."]


def test_a_server_that_refuses_every_text_is_an_outage_and_the_fact_waits(world, fake_openai):
    # A 400 to a short probe text too means the configuration is wrong (model, dimensions), not the fact.
    patch(world.acme.client, {"facts": {"diet": "Alice is vegetarian."}})
    fake_openai.failing_status = 400

    with pytest.raises(EmbedderUnavailable):
        drain()

    entry = ProfileFactOutbox.objects.get()
    assert entry.processed_at is None and entry.failed_at is None and entry.attempts == 1
