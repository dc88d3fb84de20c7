"""The container set-up (compose.yaml, Dockerfile) starts the processes as `make run` does."""

from __future__ import annotations

from pathlib import Path

import yaml

from memory_admin.runner import ROOT, _uvicorn_argv


def _compose() -> dict[str, dict[str, dict[str, object]]]:
    loaded: dict[str, dict[str, dict[str, object]]] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_the_websockets_container_runs_uvicorn_with_the_logging_options_of_make_run() -> None:
    command = _compose()["services"]["websockets"]["command"]
    assert isinstance(command, list)
    argv = _uvicorn_argv("0.0.0.0", 8001)  # noqa: S104

    assert Path(command[0]).name == Path(argv[0]).name == "uvicorn"
    assert command[1:] == argv[1:]


def test_every_app_container_shares_one_archive_volume_the_image_lets_it_write() -> None:
    # The archive lived in each container's own filesystem, under a directory only root could write: the
    # worker's archival failed, and what it archived (gone from Postgres) would not outlive the container.
    compose = _compose()
    archive = "/app/var/archive"
    for role in ("web", "websockets", "worker", "beat"):
        service = compose["services"][role]
        assert f"archive:{archive}" in service["volumes"], role  # type: ignore[operator]
        assert service["environment"]["ARCHIVE_DIR"] == archive, role  # type: ignore[index]
    assert "archive" in compose["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"mkdir -p {archive}" in dockerfile and "chown -R memory /app/staticfiles /app/var" in dockerfile


def test_every_app_container_gets_the_encryption_master_key_and_the_image_never_holds_the_env_file() -> None:
    # The README says to set ENCRYPTION_MASTER_KEY in production, but compose never passed it on (every payload
    # stayed under a key derived from SECRET_KEY); and `COPY . .` put the .env holding the secrets in the image.
    compose = _compose()
    for role in ("migrate", "web", "websockets", "worker", "beat"):
        environment = compose["services"][role]["environment"]
        assert isinstance(environment, dict)
        assert "ENCRYPTION_MASTER_KEY" in environment and "ENCRYPTION_MASTER_KEY_FILE" in environment, role
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored


def test_beats_schedule_is_kept_on_a_volume_the_image_lets_it_write() -> None:
    # In the container's /tmp, every redeploy started the schedule afresh: the daily and six-hourly lifecycle
    # jobs were put off again each time, and never ran at all on a service deployed more often than that.
    compose = _compose()
    beat = compose["services"]["beat"]
    command = beat["command"]
    assert isinstance(command, list)
    schedule = Path(command[command.index("-s") + 1])

    assert f"beat:{schedule.parent}" in beat["volumes"]  # type: ignore[operator]
    assert "beat" in compose["volumes"]
    assert f"mkdir -p /app/var/archive {schedule.parent}" in (ROOT / "Dockerfile").read_text()
