"""`make run`'s launcher: a second run while one holds the data directory says so and leaves it alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memory_admin import runner
from memory_admin.embedded import exclusive


def test_a_second_run_while_one_is_running_says_so_and_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "VAR", tmp_path)
    profile = tmp_path / "run"
    profile.mkdir()
    (profile / "state.json").write_text(json.dumps({"pid": 4242, "url": "http://127.0.0.1:8000/"}))

    with exclusive(profile / "lock") as held:
        assert held
        code = runner.run()

    assert code == 1
    assert "already running (pid 4242) at http://127.0.0.1:8000/" in capsys.readouterr().err
    assert sorted(path.name for path in profile.iterdir()) == ["lock", "state.json"]


def test_a_taken_port_is_reported_instead_of_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    monkeypatch.setattr(runner, "VAR", tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("PORT", str(taken.getsockname()[1]))
        code = runner.run()

    assert code == 1
    assert "is taken by another program" in capsys.readouterr().err
