"""Tenants never see each other's checkpoints: every endpoint answers another tenant's session with 404."""

from __future__ import annotations

import pytest

from checkpoints_app.models import Checkpoint
from conftest import World
from tests.factories import SessionFactory

from .helpers import acme_session, saved, url

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "suffix", ["", "/latest", "/by-sequence/1", "/{first}", "/verify", "/diff?from={first}&to={second}"]
)
def test_an_outsider_cannot_read_acmes_checkpoints(world: World, suffix: str) -> None:
    session = acme_session(world)
    first = saved(world.acme.client, session, state={"secret": 1})
    second = saved(world.acme.client, session, state={"secret": 2})

    response = world.outsider.client.get(url(session, suffix.format(first=first["id"], second=second["id"])))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "secret" not in response.content.decode()


def test_an_outsider_cannot_save_into_acmes_session(world: World) -> None:
    session = acme_session(world)

    response = world.outsider.client.post(url(session), {"node_id": "a", "state": {}}, format="json")

    assert response.status_code == 404
    assert not Checkpoint.objects.exists()


def test_a_parent_from_another_tenants_session_is_refused(world: World) -> None:
    session = acme_session(world)
    outsider_session = SessionFactory.create(tenant=world.outsider.tenant)
    theirs = saved(world.outsider.client, outsider_session, state={"secret": 1})

    response = world.acme.client.post(
        url(session), {"node_id": "a", "parent_id": theirs["id"], "patch": []}, format="json"
    )

    assert response.status_code == 422
    assert "secret" not in response.content.decode()
    assert not Checkpoint.objects.filter(session=session).exists()


@pytest.mark.parametrize("guess", [1, 2])
def test_a_patch_on_another_tenants_parent_learns_nothing_of_its_state(world: World, guess: int) -> None:
    # The outsider's state was just saved, so this process remembers it: a save naming it as the parent
    # from another session must be refused the same way whether a `test` op would pass on it or not.
    session = acme_session(world)
    outsider_session = SessionFactory.create(tenant=world.outsider.tenant)
    theirs = saved(world.outsider.client, outsider_session, state={"secret": 1})
    probe = [{"op": "test", "path": "/secret", "value": guess}, {"op": "add", "path": "/x", "value": 1}]

    response = world.acme.client.post(
        url(session), {"node_id": "a", "parent_id": theirs["id"], "patch": probe}, format="json"
    )

    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"parent_id": theirs["id"]}
    assert not Checkpoint.objects.filter(session=session).exists()
