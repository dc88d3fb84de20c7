"""Deleting a session (as erasure will) removes its checkpoints, forks and all, despite their parent links."""

from __future__ import annotations

import pytest

from checkpoints_app.models import Checkpoint, CheckpointHead
from conftest import World

from .helpers import acme_session, saved

pytestmark = pytest.mark.django_db


def test_deleting_a_session_deletes_its_checkpoints_and_head(world: World) -> None:
    session = acme_session(world)
    root = saved(world.acme.client, session, state={"a": 1})
    saved(world.acme.client, session, state={"a": 2})
    saved(world.acme.client, session, parent_id=root["id"], state={"b": 1})
    other = acme_session(world)
    saved(world.acme.client, other, state={"kept": True})

    session.delete()

    assert not Checkpoint.objects.filter(session_id=session.pk).exists()
    assert not CheckpointHead.objects.filter(session_id=session.pk).exists()
    assert Checkpoint.objects.filter(session=other).count() == 1
