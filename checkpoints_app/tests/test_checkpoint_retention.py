"""Retention removes checkpoints older than CHECKPOINT_RETENTION_DAYS but the latest CHECKPOINT_KEEP_LATEST of
each session, and every checkpoint it keeps still reads and verifies, forks included."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from checkpoints_app.models import Checkpoint, CheckpointKind
from checkpoints_app.services import apply_checkpoint_retention, save_checkpoint
from checkpoints_app.tasks import apply_checkpoint_retention as retention_task
from conftest import World
from sessions_app.models import AgentSession

from .helpers import acme_session, messages, url

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("settings_for_retention"),
]


@pytest.fixture
def settings_for_retention(settings: Any) -> None:
    settings.CHECKPOINT_RETENTION_DAYS = 30
    settings.CHECKPOINT_KEEP_LATEST = 5
    settings.CHECKPOINT_FULL_EVERY = 4


def grow(session: AgentSession, count: int, *, parent: Checkpoint | None = None, start: int = 1) -> list[Checkpoint]:
    """`count` saves, each adding a message to the last (so most are stored as deltas)."""
    saved: list[Checkpoint] = []
    for step in range(start, start + count):
        outcome = save_checkpoint(
            session=session,
            node_id=f"node-{step}",
            state=messages(step),
            parent_id=(saved[-1].pk if saved else parent.pk if parent else None),
        )
        saved.append(outcome.checkpoint)
    return saved


def age(session: AgentSession, *, upto_sequence: int, days: int = 40) -> None:
    Checkpoint.objects.filter(session=session, sequence__lte=upto_sequence).update(
        created_at=timezone.now() - timedelta(days=days)
    )


def sequences(session: AgentSession) -> list[int]:
    return sorted(Checkpoint.objects.filter(session=session).values_list("sequence", flat=True))


def snapshot() -> list[tuple[Any, ...]]:
    return sorted(
        (str(pk), kind, bytes(payload), checksum, parent_id)
        for pk, kind, payload, checksum, parent_id in Checkpoint.objects.values_list(
            "pk", "kind", "payload", "checksum", "parent_id"
        )
    )


@pytest.fixture
def sessions(world: World) -> dict[str, AgentSession]:
    """all_old: 12 old. half_old: 4 old then 8 young. forked: 9 old, then a young fork of #3. young: 12 young."""
    named = {name: acme_session(world) for name in ("all_old", "half_old", "forked", "young")}
    grow(named["all_old"], 12)
    age(named["all_old"], upto_sequence=12)
    grow(named["half_old"], 12)
    age(named["half_old"], upto_sequence=4)
    main = grow(named["forked"], 9)
    age(named["forked"], upto_sequence=9)
    grow(named["forked"], 1, parent=main[2], start=50)
    grow(named["young"], 12)
    return named


def test_retention_keeps_exactly_the_latest_five_and_every_young_checkpoint(sessions: dict[str, AgentSession]) -> None:
    report = apply_checkpoint_retention(dry_run=False)

    assert sequences(sessions["all_old"]) == [8, 9, 10, 11, 12]
    assert sequences(sessions["half_old"]) == list(range(5, 13))
    assert sequences(sessions["forked"]) == [6, 7, 8, 9, 10]
    assert sequences(sessions["young"]) == list(range(1, 13))
    assert (report.checkpoints_deleted, report.sessions_affected, report.checkpoints_rewritten) == (16, 3, 4)
    assert report.broken_sessions == ()


def test_kept_checkpoints_still_read_and_verify_after_their_ancestors_are_removed(
    world: World, sessions: dict[str, AgentSession]
) -> None:
    forked = sessions["forked"]
    before = Checkpoint.objects.get(session=forked, sequence=6)
    assert before.kind == CheckpointKind.DELTA, "the test needs a kept delta whose chain is removed"

    apply_checkpoint_retention(dry_run=False)

    client = world.acme.client
    for session in sessions.values():
        report = client.get(url(session, "/verify")).json()
        assert (report["valid"], report["checked"], report["first_bad_link"]) == (True, len(sequences(session)), None)
        for checkpoint in Checkpoint.objects.filter(session=session):
            assert client.get(url(session, f"/{checkpoint.pk}")).status_code == 200
    six = client.get(url(forked, "/by-sequence/6")).json()
    fork = client.get(url(forked, "/by-sequence/10")).json()
    assert six["state"] == messages(6) and six["checksum"] == before.checksum
    assert fork["state"] == messages(50)
    assert client.get(url(forked, "/latest")).json()["sequence"] == 10


def test_a_kept_checkpoint_whose_parent_was_removed_becomes_a_full_chain_start_anchored_on_it(
    sessions: dict[str, AgentSession],
) -> None:
    forked = sessions["forked"]
    parents = {c.sequence: c for c in Checkpoint.objects.filter(session=forked, sequence__in=[3, 5])}

    apply_checkpoint_retention(dry_run=False)

    six = Checkpoint.objects.get(session=forked, sequence=6)
    fork = Checkpoint.objects.get(session=forked, sequence=10)
    assert (six.kind, six.parent_id, six.pruned_parent_sequence) == (CheckpointKind.FULL, None, 5)
    assert six.pruned_parent_checksum == parents[5].checksum
    assert (fork.parent_id, fork.pruned_parent_sequence, fork.pruned_parent_checksum) == (None, 3, parents[3].checksum)


def test_a_forged_anchor_on_a_kept_chain_start_is_detected(world: World, sessions: dict[str, AgentSession]) -> None:
    forked = sessions["forked"]
    apply_checkpoint_retention(dry_run=False)
    assert world.acme.client.get(url(forked, "/verify")).json()["valid"] is True
    six = Checkpoint.objects.get(session=forked, sequence=6)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE checkpoints_app_checkpoint SET pruned_parent_checksum = %s WHERE id = %s", ["f" * 64, six.pk]
        )

    report = world.acme.client.get(url(forked, "/verify")).json()
    read = world.acme.client.get(url(forked, "/by-sequence/7"))

    assert report["valid"] is False and report["first_bad_link"]["sequence"] == 6
    assert read.status_code == 409 and read.json()["error"]["details"]["sequence"] == 6


def test_a_dry_run_changes_nothing_and_reports_what_a_run_then_does(sessions: dict[str, AgentSession]) -> None:
    before = snapshot()

    dry = apply_checkpoint_retention(dry_run=True)

    assert snapshot() == before
    real = apply_checkpoint_retention(dry_run=False)
    assert dry.dry_run and not real.dry_run
    assert (dry.checkpoints_deleted, dry.sessions_affected, dry.checkpoints_rewritten) == (
        real.checkpoints_deleted,
        real.sessions_affected,
        real.checkpoints_rewritten,
    )
    assert dry.checkpoints_deleted == 16


def test_small_batches_remove_the_same_rows_as_one_big_one(sessions: dict[str, AgentSession]) -> None:
    report = apply_checkpoint_retention(dry_run=False, batch_size=1)

    assert (report.checkpoints_deleted, report.sessions_affected, report.checkpoints_rewritten) == (16, 3, 4)
    assert sequences(sessions["forked"]) == [6, 7, 8, 9, 10]


def test_a_second_run_finds_nothing_to_remove(sessions: dict[str, AgentSession]) -> None:
    apply_checkpoint_retention(dry_run=False)

    again = apply_checkpoint_retention(dry_run=False)

    assert (again.checkpoints_deleted, again.sessions_affected, again.checkpoints_rewritten) == (0, 0, 0)


def test_retention_follows_its_settings(sessions: dict[str, AgentSession]) -> None:
    with override_settings(CHECKPOINT_KEEP_LATEST=2, CHECKPOINT_RETENTION_DAYS=50):
        assert apply_checkpoint_retention(dry_run=False).checkpoints_deleted == 0
    with override_settings(CHECKPOINT_KEEP_LATEST=2):
        apply_checkpoint_retention(dry_run=False)
    assert sequences(sessions["all_old"]) == [11, 12]


def test_a_session_with_a_tampered_chain_keeps_its_evidence(world: World, sessions: dict[str, AgentSession]) -> None:
    all_old = sessions["all_old"]
    with connection.cursor() as cursor:  # the chain of #8 (a delta whose parent goes) runs through #6
        cursor.execute(
            "UPDATE checkpoints_app_checkpoint SET node_id = 'forged' WHERE session_id = %s AND sequence = 6",
            [all_old.pk],
        )
    assert Checkpoint.objects.get(session=all_old, sequence=8).kind == CheckpointKind.DELTA

    report = apply_checkpoint_retention(dry_run=False)

    assert report.broken_sessions == (str(all_old.pk),)
    assert sequences(all_old) == list(range(1, 13))
    assert world.acme.client.get(url(all_old, "/verify")).json()["first_bad_link"]["sequence"] == 6


def test_the_daily_task_applies_retention(sessions: dict[str, AgentSession]) -> None:
    result = retention_task.apply().get()

    assert result["checkpoints_deleted"] == 16
    assert sequences(sessions["all_old"]) == [8, 9, 10, 11, 12]


def test_the_task_is_scheduled_daily(settings: Any) -> None:
    # Beat runs retention through lifecycle_app, which applies each tenant's policy with checkpoints_app.retention.
    entry = settings.CELERY_BEAT_SCHEDULE["lifecycle-checkpoint-retention"]
    assert entry["task"] == "lifecycle_app.tasks.apply_checkpoint_retention"
    assert entry["schedule"] == 24 * 3600.0
    assert "checkpoints-retention" not in settings.CELERY_BEAT_SCHEDULE


def test_verify_names_what_retention_removed_and_the_anchors_the_kept_chain_verifies_from(
    world: World, sessions: dict[str, AgentSession]
) -> None:
    apply_checkpoint_retention(dry_run=False)
    forked = sessions["forked"]
    six, fork = (Checkpoint.objects.get(session=forked, sequence=sequence) for sequence in (6, 10))

    report = world.acme.client.get(url(forked, "/verify")).json()
    untouched = world.acme.client.get(url(sessions["young"], "/verify")).json()

    assert report["valid"] is True
    assert report["removed_by_retention"] == [[1, 5]]
    assert report["verified_from"] == {"checkpoint_id": str(six.pk), "sequence": 6, "anchored": True}
    assert report["retention_anchors"] == [
        {"checkpoint_id": str(six.pk), "sequence": 6, "removed_parent_sequence": 5},
        {"checkpoint_id": str(fork.pk), "sequence": 10, "removed_parent_sequence": 3},
    ]
    assert (untouched["removed_by_retention"], untouched["retention_anchors"]) == ([], [])
    assert untouched["verified_from"]["sequence"] == 1 and untouched["verified_from"]["anchored"] is False


def test_a_retried_save_of_a_sequence_retention_removed_is_a_409_saying_so(
    world: World, sessions: dict[str, AgentSession]
) -> None:
    session = sessions["all_old"]
    apply_checkpoint_retention(dry_run=False)

    retry = world.acme.client.post(
        url(session), {"node_id": "node-2", "state": messages(2), "sequence": 2}, format="json"
    )

    assert retry.status_code == 409
    error = retry.json()["error"]
    # It said "already exists with different content" of a checkpoint that no longer exists.
    assert "removed by retention" in error["message"] and "already exists" not in error["message"]
    assert error["details"]["sequence"] == 2 and error["details"]["removed_by_retention"] is True
    assert error["details"]["next_sequence"] == 13
