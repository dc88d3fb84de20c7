"""A save against an older checkpoint forks: it takes the session's next sequence and shows as a branch."""

from __future__ import annotations

import pytest
from django.test import override_settings

from conftest import World

from .helpers import acme_session, saved, url

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
