"""The checkpoints page says what retention removed and that the kept chain verifies from its anchor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from checkpoints_app.models import Checkpoint
from checkpoints_app.services import apply_checkpoint_retention, save_checkpoint
from conftest import World, logged_in
from sessions_app.services import create_session

pytestmark = pytest.mark.django_db


@override_settings(CHECKPOINT_RETENTION_DAYS=30, CHECKPOINT_KEEP_LATEST=3, CHECKPOINT_FULL_EVERY=4)
def test_the_list_names_the_removed_checkpoints_and_the_anchor_the_chain_verifies_from(world: World) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="retained")
    parent = None
    for step in range(1, 9):
        parent = save_checkpoint(
            session=session, node_id="n", state={"notes": ["x"] * step}, parent_id=parent.pk if parent else None
        ).checkpoint
    Checkpoint.objects.filter(session=session).update(created_at=timezone.now() - timedelta(days=40))
    apply_checkpoint_retention(dry_run=False)

    response = logged_in(world.support).get(f"/sessions/{session.pk}/checkpoints/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Chain verified: 3 checkpoints" in page
    assert "Retention removed #1\u2013#5." in page
    assert "The kept chain verifies from #6, a full snapshot anchored on the checksum" in page
    assert "#6 (after removed #5)" in page


def test_a_session_retention_never_touched_says_nothing_about_it(world: World) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="young")
    save_checkpoint(session=session, node_id="n", state={"notes": []})

    page = logged_in(world.support).get(f"/sessions/{session.pk}/checkpoints/").content.decode()

    assert "Retention removed" not in page
