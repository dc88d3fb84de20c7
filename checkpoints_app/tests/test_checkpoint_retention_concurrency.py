"""Two retention runs at once, each on its own database connection, remove every expired row exactly once and
leave every kept chain valid, while an agent keeps saving."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from checkpoints_app.models import Checkpoint
from checkpoints_app.selectors import verify_checkpoints
from checkpoints_app.services import RetentionReport, apply_checkpoint_retention, save_checkpoint
from conftest import World
from sessions_app.models import AgentSession
from tests.concurrency import at_once

from .helpers import acme_session, messages

pytestmark = pytest.mark.django_db(transaction=True)

SESSIONS = 6
SAVES = 30
KEEP = 5


@pytest.fixture(autouse=True)
def _policy(settings: Any) -> None:
    settings.CHECKPOINT_RETENTION_DAYS = 30
    settings.CHECKPOINT_KEEP_LATEST = KEEP
    settings.CHECKPOINT_FULL_EVERY = 4


def old_sessions(world: World) -> list[AgentSession]:
    sessions = [acme_session(world) for _ in range(SESSIONS)]
    for session in sessions:
        for step in range(1, SAVES + 1):
            save_checkpoint(session=session, node_id="n", state=messages(step))
    Checkpoint.objects.update(created_at=timezone.now() - timedelta(days=40))
    return sessions


def retention() -> RetentionReport:
    return apply_checkpoint_retention(dry_run=False, batch_size=3)


def test_two_concurrent_runs_remove_each_expired_checkpoint_once(world: World) -> None:
    sessions = old_sessions(world)

    reports = at_once(retention, retention)

    assert all(isinstance(report, RetentionReport) for report in reports), reports
    assert sum(report.checkpoints_deleted for report in reports) == SESSIONS * (SAVES - KEEP)
    # Each session's oldest kept checkpoint was re-anchored once, by one of the two runs.
    assert sum(report.checkpoints_rewritten for report in reports) == SESSIONS
    for session in sessions:
        kept = Checkpoint.objects.filter(session=session).values_list("sequence", flat=True)
        assert sorted(kept) == list(range(SAVES - KEEP + 1, SAVES + 1))
        assert verify_checkpoints(session=session).valid


def test_an_agent_saving_during_two_runs_loses_nothing_and_every_chain_verifies(world: World) -> None:
    sessions = old_sessions(world)
    busy = sessions[0]
    young = list(range(SAVES + 1, SAVES + 11))

    def agent() -> list[int]:
        return [save_checkpoint(session=busy, node_id="n", state=messages(step)).checkpoint.sequence for step in young]

    reports, other, saved = at_once(retention, retention, agent)

    assert isinstance(reports, RetentionReport) and isinstance(other, RetentionReport), (reports, other)
    assert saved == young
    total = SESSIONS * SAVES + len(young)
    assert reports.checkpoints_deleted + other.checkpoints_deleted == total - Checkpoint.objects.count()
    assert set(young) <= set(Checkpoint.objects.filter(session=busy).values_list("sequence", flat=True))
    for session in sessions:
        assert verify_checkpoints(session=session).valid
