"""Each runner profile keeps its archives under its own data directory (var/<profile>/archive), as it keeps its
own database: `make run`, `make test` and a `runner env` shell never share archive storage, and `runner clean`
removes a profile's archives with the rest of its data. An ARCHIVE_DIR set in the environment is kept."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from memory_admin import runner


@pytest.fixture
def var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The runner's var/ under tmp_path, with servers given by URL so that nothing is started."""
    monkeypatch.setattr(runner, "VAR", tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgres://me@db.example:5432/memory")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/0")
    monkeypatch.delenv("ARCHIVE_DIR", raising=False)
    return tmp_path


def test_each_profile_has_its_own_archive_directory_under_its_data(var: Path) -> None:
    directories = {profile: runner.service_environment(profile)["ARCHIVE_DIR"] for profile in ("run", "test", "fx")}

    assert directories == {profile: str(var / profile / "archive") for profile in ("run", "test", "fx")}


def test_an_archive_dir_set_in_the_environment_is_kept(var: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_DIR", "/srv/archive")

    assert runner.service_environment("test")["ARCHIVE_DIR"] == "/srv/archive"


def test_a_runner_env_shell_gets_the_profiles_archive_directory(var: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.print_env("scratch") == 0
    read_back = subprocess.run(
        ["bash", "-c", f'{capsys.readouterr().out}\nprintf "%s\\n" "$ARCHIVE_DIR"'],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )

    assert read_back.stdout.splitlines() == [str(var / "scratch" / "archive")], read_back.stderr


def test_cleaning_a_profile_removes_its_archives_and_leaves_another_profiles(var: Path) -> None:
    for profile in ("scratch", "other"):
        archive = Path(runner.service_environment(profile)["ARCHIVE_DIR"])
        (archive / "tenant" / "session").mkdir(parents=True)
        (archive / "tenant" / "session" / "events.json.gz").write_bytes(b"archived")

    assert runner.main(["clean", "scratch"]) == 0

    assert not (var / "scratch").exists()
    assert (var / "other" / "archive" / "tenant" / "session" / "events.json.gz").read_bytes() == b"archived"


def test_make_run_takes_over_the_archives_every_profile_used_to_share(var: Path) -> None:
    # Archived sessions of an earlier `make run` are read back from var/archive, where their objects went.
    (var / "archive" / "tenant").mkdir(parents=True)
    (var / "archive" / "tenant" / "events.json.gz").write_bytes(b"archived")

    archive = Path(runner.service_environment("run")["ARCHIVE_DIR"])

    assert archive == var / "run" / "archive"
    assert (archive / "tenant" / "events.json.gz").read_bytes() == b"archived"
    assert not (var / "archive").exists()
    assert runner.service_environment("test")["ARCHIVE_DIR"] == str(var / "test" / "archive")
