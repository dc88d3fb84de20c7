"""A save against an older checkpoint forks: it takes the session's next sequence and shows as a branch."""

from __future__ import annotations

import pytest
from django.test import override_settings

from checkpoints_app.models import Checkpoint
from conftest import World
from memory_admin.health import redis_client

from .helpers import acme_session, messages, save, saved, url

pytestmark = pytest.mark.django_db


def test_a_save_against_an_older_parent_forks_and_gets_the_next_sequence(world: World) -> None:
    session = acme_session(world)
    root = saved(world.acme.client, session, state={"path": ["root"]})
    saved(world.acme.client, session, state={"path": ["root", "main-1"]})
    saved(world.acme.client, session, state={"path": ["root", "main-1", "main-2"]})

    fork = saved(world.acme.client, session, parent_id=root["id"], state={"path": ["root", "fork-1"]})

    assert fork["sequence"] == 4
    assert fork["parent_id"] == root["id"]
    assert fork["parent_sequence"] == 1
    assert fork["forked"] is True


def test_saves_without_parent_after_a_fork_continue_the_fork(world: World) -> None:
    session = acme_session(world)
    root = saved(world.acme.client, session, state={"n": 0})
    saved(world.acme.client, session, state={"n": 1})
    fork = saved(world.acme.client, session, parent_id=root["id"], state={"n": 10})

    after = saved(world.acme.client, session, state={"n": 11})

    assert after["parent_id"] == fork["id"]
    assert after["forked"] is False


@override_settings(CHECKPOINT_FULL_EVERY=4)
def test_both_branches_read_back_their_own_states(world: World) -> None:
    session = acme_session(world)
    root = saved(world.acme.client, session, state={"items": [0]})
    main = [root]
    for i in range(1, 6):
        main.append(saved(world.acme.client, session, state={"items": list(range(i + 1))}))
    branch = [saved(world.acme.client, session, parent_id=main[2]["id"], state={"items": [0, 1, 2, "b0"]})]
    for i in range(1, 4):
        branch.append(
            saved(
                world.acme.client,
                session,
                parent_id=branch[-1]["id"],
                patch=[{"op": "add", "path": "/items/-", "value": f"b{i}"}],
            )
        )

    for i, checkpoint in enumerate(main):
        assert world.acme.client.get(url(session, f"/{checkpoint['id']}")).json()["state"] == {
            "items": list(range(i + 1))
        }
    assert world.acme.client.get(url(session, f"/{branch[-1]['id']}")).json()["state"] == {
        "items": [0, 1, 2, "b0", "b1", "b2", "b3"]
    }
    verification = world.acme.client.get(url(session, "/verify")).json()
    assert verification == {
        "valid": True,
        "checked": 10,
        "first_bad_link": None,
        "verified_from": {"checkpoint_id": main[0]["id"], "sequence": 1, "anchored": False},
        "removed_by_retention": [],
        "retention_anchors": [],
    }


def test_the_list_shows_every_branch_with_its_parent(world: World) -> None:
    session = acme_session(world)
    root = saved(world.acme.client, session, state={})
    child = saved(world.acme.client, session, state={"a": 1})
    fork = saved(world.acme.client, session, parent_id=root["id"], state={"b": 1})

    items = world.acme.client.get(url(session)).json()["results"]

    assert [(item["id"], item["parent_id"], item["forked"]) for item in items] == [
        (fork["id"], root["id"], True),
        (child["id"], root["id"], False),
        (root["id"], None, False),
    ]


def test_a_retried_save_whose_idempotency_record_was_lost_returns_the_stored_checkpoint_instead_of_a_twin_branch(
    world: World,
) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state=messages(1))
    body = {"node_id": "agent", "parent_id": first["id"], "state": messages(2), "metadata": {"step": 2}}
    client = world.acme.client
    stored = client.post(url(session), body, format="json", HTTP_IDEMPOTENCY_KEY="step-2")
    assert stored.status_code == 201
    redis_client().flushall()  # the key's record is gone, as when Redis restarts or is unreachable

    retried = client.post(url(session), body, format="json", HTTP_IDEMPOTENCY_KEY="step-2")
    changed = client.post(url(session), {**body, "state": messages(3)}, format="json")

    assert retried.status_code == 200
    assert retried.json()["id"] == stored.json()["id"]
    assert changed.status_code == 201 and changed.json()["sequence"] == 3  # new content from the same parent forks
    assert Checkpoint.objects.filter(session=session).count() == 3


def test_going_back_to_a_parent_and_rerunning_a_node_that_gives_an_older_childs_state_forks_and_moves_latest(
    world: World,
) -> None:
    session = acme_session(world)
    client = world.acme.client
    start = saved(client, session, node_id="start", state=messages(1))
    llm = saved(client, session, node_id="llm", state=messages(2))
    saved(client, session, node_id="tool", state=messages(3))

    rerun = save(
        client,
        session,
        node_id="llm",
        parent_id=start["id"],
        patch=[{"op": "add", "path": "/messages/-", "value": messages(2)["messages"][1]}],
    )

    assert rerun.status_code == 201, rerun.content
    fork = rerun.json()
    assert fork["id"] != llm["id"] and fork["checksum"] != llm["checksum"]
    assert (fork["sequence"], fork["parent_id"], fork["forked"]) == (4, start["id"], True)
    latest = client.get(url(session, "/latest")).json()
    assert (latest["id"], latest["state"]) == (fork["id"], messages(2))


def test_a_retried_fork_whose_idempotency_record_was_lost_returns_the_fork(world: World) -> None:
    session = acme_session(world)
    client = world.acme.client
    start = saved(client, session, state=messages(1))
    saved(client, session, state=messages(3))
    body = {"node_id": "agent", "parent_id": start["id"], "state": messages(2)}
    fork = client.post(url(session), body, format="json", HTTP_IDEMPOTENCY_KEY="fork")
    assert fork.status_code == 201 and fork.json()["sequence"] == 3
    redis_client().flushall()  # the key's record is gone, as when Redis restarts or is unreachable

    retried = client.post(url(session), body, format="json", HTTP_IDEMPOTENCY_KEY="fork")

    assert retried.status_code == 200
    assert retried.json()["id"] == fork.json()["id"]
    assert Checkpoint.objects.filter(session=session).count() == 3
